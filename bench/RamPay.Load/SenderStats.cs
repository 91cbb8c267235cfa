using RamPay.Core;
using RamPay.Protocol;

namespace RamPay.Load;

/// <summary>One payment the server acknowledged (ok, durable), between wallets by their index in the run.</summary>
public readonly record struct AckedPayment(long PaymentId, int From, int To, long Amount);

/// <summary>
/// What one sender (one TCP pipeline slot, or one HTTP connection) saw. Written by that sender alone, so the hot
/// path takes no lock; the progress line reads the counters from another thread (whole longs, possibly a moment
/// stale), and the report merges everything after the senders have stopped.
/// </summary>
internal sealed class SenderStats
{
    public const string UnknownOutcome = "unknown";

    private readonly long[] _resultCodes = new long[256];
    private readonly Dictionary<string, long> _namedOutcomes = [];
    private long _acknowledged, _rejected, _sent, _answered, _retries, _unknown, _replayed;

    public LatencyHistogram Latency { get; } = new();
    public List<AckedPayment> Acked { get; } = [];
    /// <summary>Payments and requests sent in the measured phase and answered (throughput counts these).</summary>
    public long MeasuredPayments { get; private set; }
    public long MeasuredAcknowledged { get; private set; }
    public long MeasuredRequests { get; private set; }

    public long Acknowledged => Volatile.Read(ref _acknowledged);
    public long Rejected => Volatile.Read(ref _rejected);
    public long InFlight => Volatile.Read(ref _sent) - Volatile.Read(ref _answered);
    public long Retries => Volatile.Read(ref _retries);
    public long Unknown => Volatile.Read(ref _unknown);
    public long Replayed => Volatile.Read(ref _replayed);

    public void Sending() => Volatile.Write(ref _sent, _sent + 1);

    public void Retrying() => Volatile.Write(ref _retries, _retries + 1);

    /// <summary>A TCP frame's results: command i paid wallet <paramref name="from"/> → <paramref name="to"/>[i].</summary>
    public void RecordFrame(long sentAt, long answeredAt, RunControl run, ReadOnlySpan<WireCommand> commands, ReadOnlySpan<WireResult> results, int from, ReadOnlySpan<int> to)
    {
        long acked = 0, rejected = 0, replayed = 0;
        for (int i = 0; i < commands.Length; i++)
        {
            WireResult r = results[i];
            _resultCodes[(byte)r.Code]++;
            if (r.Replayed) replayed++;
            if (r.Code == ResultCode.Ok)
            {
                Acked.Add(new AckedPayment(r.Id, from, to[i], commands[i].Amount));
                acked++;
            }
            else rejected++;
        }
        Answered(sentAt, answeredAt, run, commands.Length, acked, rejected, replayed);
    }

    /// <summary>An HTTP payment's outcome: acknowledged, or refused with an API error code.</summary>
    public void RecordPayment(long sentAt, long answeredAt, RunControl run, AckedPayment? acked, string? errorCode, bool replayed)
    {
        if (acked is { } a) Acked.Add(a);
        else Count(errorCode ?? "error");
        if (acked is not null) _resultCodes[(byte)ResultCode.Ok]++;
        Answered(sentAt, answeredAt, run, 1, acked is null ? 0 : 1, acked is null ? 1 : 0, replayed ? 1 : 0);
    }

    /// <summary>
    /// Requests whose outcome stays unknown after every retry (the connection kept failing): counted apart, because
    /// the self-check cannot know whether they moved money.
    /// </summary>
    public void RecordUnknown(int payments)
    {
        Count(UnknownOutcome, payments);
        Volatile.Write(ref _unknown, _unknown + payments);
        Volatile.Write(ref _answered, _answered + 1);
    }

    /// <summary>Requests refused whole and never applied (server_busy on every attempt).</summary>
    public void RecordRefused(string code, int payments)
    {
        Count(code, payments);
        Volatile.Write(ref _rejected, _rejected + payments);
        Volatile.Write(ref _answered, _answered + 1);
    }

    private void Answered(long sentAt, long answeredAt, RunControl run, int payments, long acked, long rejected, long replayed)
    {
        if (run.IsMeasured(sentAt))
        {
            Latency.RecordTicks(answeredAt - sentAt);
            MeasuredPayments += payments;
            MeasuredAcknowledged += acked;
            MeasuredRequests++;
        }
        Volatile.Write(ref _acknowledged, _acknowledged + acked);
        Volatile.Write(ref _rejected, _rejected + rejected);
        Volatile.Write(ref _replayed, _replayed + replayed);
        Volatile.Write(ref _answered, _answered + 1);
    }

    private void Count(string name, long n = 1) =>
        _namedOutcomes[name] = _namedOutcomes.GetValueOrDefault(name) + n;

    /// <summary>Outcome name (the API's snake_case code, "ok" for acknowledged) → payments.</summary>
    public void AddOutcomesTo(Dictionary<string, long> into)
    {
        for (int code = 0; code < _resultCodes.Length; code++)
        {
            if (_resultCodes[code] == 0) continue;
            string name = ResultCodes.Name((ResultCode)code);
            into[name] = into.GetValueOrDefault(name) + _resultCodes[code];
        }
        foreach ((string name, long n) in _namedOutcomes) into[name] = into.GetValueOrDefault(name) + n;
    }
}
