namespace RamPay.Events.Tests;

/// <summary>A clock the test moves by hand (retention, fsync intervals); starts at the ledger scenarios' first command.</summary>
internal sealed class FakeClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now = now;

    public FakeClock() : this(DateTimeOffset.FromUnixTimeMilliseconds(LedgerChanges.StartMs)) { }

    public override DateTimeOffset GetUtcNow() => Now;
}
