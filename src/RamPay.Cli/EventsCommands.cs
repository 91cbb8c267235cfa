using System.CommandLine;
using System.Text;
using RamPay.Core;
using RamPay.Events;
using RamPay.Sinks;
using Command = System.CommandLine.Command;

namespace RamPay.Cli;

/// <summary>
/// <c>rampay events list|derive</c>: the server's event log, and the same events re-derived from the journal (or its
/// archive) for any range, older than the log's retention included. Both print one event per line, the exact JSON
/// the Kafka sink publishes (docs/events.md).
/// </summary>
public static class EventsCommands
{
    public static Command Build(Option<DirectoryInfo> data, Option<int> idempotencyKeys, TextWriter output)
    {
        var limit = new Option<int>("--limit") { Description = "How many events, newest first (1..100000)", DefaultValueFactory = _ => 100 };
        var type = new Option<string?>("--type") { Description = "An event type, or a prefix ending with * (Payment*)" };
        var after = new Option<string?>("--starting-after") { Description = "An event id: list the events before it (the next page)" };
        var list = new Command("list", "Print the events the server's event log (<data>/events) holds, newest first. Changes nothing.") { data, limit, type, after };
        list.SetAction(r => List(r.GetValue(data)!, r.GetValue(limit), r.GetValue(type), r.GetValue(after), output));

        var from = new Option<long>("--from") { Description = "First journal sequence", DefaultValueFactory = _ => 1 };
        var to = new Option<long>("--to") { Description = "Last journal sequence (default: the journal's end)" };
        var derive = new Command("derive", "Re-derive the events of a journal range from the journal and its archive (RamPay:Journal:ArchiveDirectory, through the retirement manifest), in stream order, oldest first: the same ids and bytes the server published. Stop the server first, or use a copy of its data.")
        {
            data, from, to, idempotencyKeys,
        };
        derive.SetAction(r => Derive(r.GetValue(data)!, r.GetValue(from), r.GetValue(to), r.GetValue(idempotencyKeys), output));
        return new Command("events", "The events (docs/events.md): the event log, or re-derived from the journal") { list, derive };
    }

    public static int List(DirectoryInfo data, int limit, string? type, string? startingAfter, TextWriter output)
    {
        var folder = RampayCli.Folder(data);
        string dir = folder.Events;
        if (!Directory.Exists(dir))
        {
            output.WriteLine($"error: no event log at {dir}");
            return RampayCli.ExitUsage;
        }
        if (limit is < 1 or > 100_000 || (type is not null && !EventLog.IsTypeFilter(type)))
        {
            output.WriteLine("error: --limit is 1..100000 and --type is a type name or a prefix ending with *");
            return RampayCli.ExitUsage;
        }
        EventPosition? cursor = null;
        if (startingAfter is not null)
        {
            if (!EventPosition.TryParse(startingAfter, out var p))
            {
                output.WriteLine("error: --starting-after is an event id, sequence-index-ordinal");
                return RampayCli.ExitUsage;
            }
            cursor = p;
        }
        using var log = new EventLog(new EventLogOptions { Directory = dir, Retention = TimeSpan.FromDays(36500), MaxBytes = long.MaxValue });
        var page = log.List(null, Math.Min(limit, 1000), cursor, null, type);
        int left = limit;
        while (true)
        {
            foreach (var e in page.Data) output.WriteLine(Encoding.UTF8.GetString(e.Record.Json.Span));
            left -= page.Data.Count;
            if (!page.HasMore || left <= 0) break;
            page = log.List(null, Math.Min(left, 1000), page.Data[^1].Record.Position, null, type);
        }
        return RampayCli.ExitOk;
    }

    public static int Derive(DirectoryInfo data, long from, long to, int idempotencyKeys, TextWriter output)
    {
        if (from < 1 || (to != 0 && to < from))
        {
            output.WriteLine("error: --from is at least 1 and --to at least --from");
            return RampayCli.ExitUsage;
        }
        var folder = RampayCli.Folder(data);
        string journal = folder.Journal;
        if (!Directory.Exists(journal))
        {
            output.WriteLine($"error: no journal at {journal}");
            return RampayCli.ExitUsage;
        }
        // The replica starts at the newest snapshot at or before from - 1, and replays the journal (or its archive) to it.
        using var follower = new LedgerFollower(folder.Snapshots, journal, new LedgerOptions { IdempotencyMaxKeys = idempotencyKeys }, afterSequence: from - 1);
        var encoder = new EventEncoder();
        var mapped = new MappedEvent[EventMapper.MaxEventsPerChange];
        var batch = new ChangeBatch(4096);
        long last = to == 0 ? long.MaxValue : to;
        while (follower.LastSequence < last)
        {
            batch.Clear();
            if (follower.Poll(last, batch.Capacity, batch) == 0) break;
            foreach (ref readonly Change change in batch.Changes)
            {
                int n = EventMapper.Map(change, mapped);
                for (int i = 0; i < n; i++) output.WriteLine(Encoding.UTF8.GetString(encoder.Encode(change, mapped[i])));
            }
        }
        return RampayCli.ExitOk;
    }
}
