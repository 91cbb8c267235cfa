using RamPay.Core;
using RamPay.Engine;

namespace RamPay.Engine.Tests;

/// <summary>Payment notes travel as journaled attachments: replay and snapshots must bring back the same notes and the same state.</summary>
public class PaymentNoteReplayTests
{
    [Fact]
    public void The_largest_valid_note_fits_in_a_journaled_attachment()
    {
        Assert.True(PaymentNote.MaxEncodedBytes <= RecordTypes.MaxAttachmentBytes,
            $"a note may encode to {PaymentNote.MaxEncodedBytes} bytes; a command record carries {RecordTypes.MaxAttachmentBytes}");
    }

    /// <summary>The note each payment id holds, for comparing whole ledgers.</summary>
    private static Dictionary<long, PaymentNote> NotesOf(IReadOnlyLedger ledger)
    {
        var notes = new Dictionary<long, PaymentNote>();
        for (long id = 1; id <= ledger.PaymentCount; id++)
            if (ledger.GetPaymentNote(id) is { } note) notes.Add(id, note);
        return notes;
    }

    [Fact]
    public async Task Notes_come_back_the_same_from_a_full_replay_from_a_snapshot_plus_tail_and_after_a_restart()
    {
        using var dir = new TempDataDir();
        var options = new EngineOptions
        {
            DataDirectory = dir.Path, Clock = new SteppingClock().Now, RingSize = 1024, TickIntervalMs = 0,
            SnapshotEveryCommands = 0, SnapshotOnStop = true,
            Ledger = new LedgerOptions { MaxAccounts = 100, MaxPayments = 1 << 16, IdempotencyMaxKeys = 1 << 14 },
        };
        var commands = new Commands().Workload(seed: 11, wallets: 10, count: 3000);
        // Every third transfer or authorization carries a note (some the largest there is), a few a malformed one.
        var attachments = new byte[]?[commands.Count];
        string largeDescription = new('€', PaymentNote.MaxDescriptionLength);
        for (int i = 0; i < commands.Count; i++)
        {
            if (commands[i].Type is not (CommandType.Transfer or CommandType.Authorize)) continue;
            if (i % 40 == 1) attachments[i] = [0xFF];
            else if (i % 3 == 0)
                attachments[i] = new PaymentNote(i % 30 == 0 ? largeDescription : $"payment {i}", i % 2 == 0 ? $"https://example.com/hooks/{i}" : null).Encode();
        }

        // Two runs: the first stops with a snapshot at a known sequence, the second (started from it) leaves a tail.
        const int snapshotAt = 2000;
        var completion = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(options, completion))
        {
            for (int i = 0; i < snapshotAt; i++) engine.Submit(commands[i], correlation: i, attachments[i]);
        }
        string live;
        Dictionary<long, PaymentNote> liveNotes;
        using (var engine = RamPayEngine.Start(options with { SnapshotOnStop = false }, completion))
        {
            Assert.Equal(snapshotAt, engine.Recovery.SnapshotSequence);
            for (int i = snapshotAt; i < commands.Count; i++) engine.Submit(commands[i], correlation: i, attachments[i]);
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
            liveNotes = NotesOf(engine.LedgerAfterStop);
        }

        // The notes sit on the payments their commands created, and nowhere else.
        var expected = new Dictionary<long, PaymentNote>();
        int fromSnapshot = 0, fromTail = 0, malformed = 0;
        foreach (var (sequence, correlation, result) in completion.Completed)
        {
            if (attachments[correlation] is not { } attachment) continue;
            if (result.Code == ResultCode.InvalidPaymentNote) malformed++;
            if (!result.IsOk || result.Replayed) continue;
            expected.Add(result.Id, PaymentNote.TryDecode(attachment)!);
            if (sequence <= snapshotAt) fromSnapshot++; else fromTail++;
        }
        Assert.Equal(expected, liveNotes);
        Assert.True(fromSnapshot > 0 && fromTail > 0, $"notes before the last snapshot: {fromSnapshot}, after it: {fromTail}");
        Assert.True(malformed > 0, "no malformed note was refused");
        Assert.Contains(liveNotes.Values, n => n.Description == largeDescription);

        var warnings = new List<string>();
        var full = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, warnings);
        var tail = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: true, warnings);
        Assert.Empty(warnings);
        Assert.Equal(0, full.SnapshotSequence);
        Assert.Equal(snapshotAt, tail.SnapshotSequence);
        Assert.Equal(live, full.Ledger.ComputeStateHash());
        Assert.Equal(live, tail.Ledger.ComputeStateHash());
        Assert.Equal(liveNotes, NotesOf(full.Ledger));
        Assert.Equal(liveNotes, NotesOf(tail.Ledger));

        using var restarted = RamPayEngine.Start(options);
        Assert.Equal(live, restarted.Recovery.StateHash);
        Assert.Equal(liveNotes, await restarted.QueryAsync(NotesOf));
    }
}
