using RamPay.Core;
using RamPay.Engine;
using RamPay.Server.Auth;
using RamPay.Server.Hosting;
using RamPay.Server.Http;

namespace RamPay.Server.Ingress;

/// <summary>
/// The one way a caller's payment request becomes engine commands, for HTTP (Http/Api.cs) and TCP
/// (Tcp/TcpConnection.cs) alike. The adapters parse their format into <see cref="Command"/>s and render the answers;
/// every rule between is here:
/// <list type="bullet">
/// <item>ownership: a user's commands carry <c>OwnerOnly</c>, an admin's do not (<see cref="Ownership"/>);</item>
/// <item>who the command is for: the client id is the authenticated user's, never the request's;</item>
/// <item>the values checked before the ring, and a deposit's source and maximum (<see cref="CommandRules"/>);</item>
/// <item>idempotency key hashing (<see cref="IdempotencyKeys"/>);</item>
/// <item>back-pressure: while the sinks lag no new command enters the ring (<see cref="BackPressureReason"/>);</item>
/// <item>timeouts: every submission is a <see cref="PendingCommands"/> of the engine, failed after
///   <c>RamPay:CommandTimeoutMs</c> by its watchdog;</item>
/// <item>result code to HTTP status (<see cref="ResultStatus"/>).</item>
/// </list>
/// The hot path (a TCP batch) costs what it did: one rule pass per command over a struct, no allocation.
/// </summary>
public sealed class IngressGateway(Platform platform)
{
    public EngineHost Engine => platform.Engine;
    public ServerOptions Options => platform.Options;

    /// <summary>
    /// Makes <paramref name="command"/> the caller's (client id, ownership flag) and applies the value rules. On a
    /// refusal nothing may be submitted for it; the refusal's code is the command's result.
    /// </summary>
    public IngressRefusal Prepare(ref Command command, Caller caller)
    {
        command.ClientId = caller.UserId;
        command.Flags = Ownership.FlagsFor(caller);
        return CommandRules.Check(ref command, platform.FundingAccounts, platform.Options.MaxDepositAmount);
    }

    // ---- back-pressure ----------------------------------------------------------------------------------------

    /// <summary>
    /// Why new commands must wait now (the sinks lag past their limit), or null. The one rule; each protocol expresses
    /// it as documented: HTTP answers <c>503 sinks_lagging</c> (<see cref="ThrowIfBackPressured"/>), TCP stops reading
    /// the connection until it clears, so TCP's own flow control holds the client (<see cref="WaitWhileBackPressuredAsync"/>).
    /// </summary>
    public string? BackPressureReason() => Engine.BackPressure?.Invoke();

    public void ThrowIfBackPressured()
    {
        if (BackPressureReason() is { } reason) throw new BackPressureException(reason);
    }

    public async ValueTask WaitWhileBackPressuredAsync(CancellationToken cancel)
    {
        while (BackPressureReason() is not null) await Task.Delay(10, cancel).ConfigureAwait(false);
    }

    // ---- submission -------------------------------------------------------------------------------------------

    /// <summary>
    /// One prepared command, answered once durable (HTTP). Refused while back-pressured; an engine that is not running
    /// or a command not durable within the command timeout throws <see cref="EngineUnavailableException"/>.
    /// </summary>
    public Task<CommandResult> ExecuteAsync(in Command command, byte[]? attachment = null, ICommandReadBack? readBack = null)
    {
        ThrowIfBackPressured();
        return Engine.ExecuteAsync(command, attachment, readBack: readBack);
    }

    /// <summary>
    /// Prepared commands in one submission (an HTTP batch, a TCP frame). The caller has applied back-pressure its
    /// protocol's way first. Throws <see cref="EngineUnavailableException"/> when the engine does not take them.
    /// </summary>
    public PendingCommands Submit(ReadOnlySpan<Command> commands, byte[]?[]? attachments = null) => Engine.Submit(commands, attachments);

    /// <summary>Waits for a submission until durable; past the command timeout it fails with <see cref="EngineUnavailableException"/>.</summary>
    public Task WaitAsync(PendingCommands pending) => Engine.Wait(pending);

    // ---- answers ----------------------------------------------------------------------------------------------

    /// <summary>The HTTP status of a result code.</summary>
    public static int HttpStatusOf(ResultCode code) => ResultStatus.HttpStatusOf(code);

    /// <summary>
    /// The message for a refusal at ingress: the ledger's message for its code, or a more precise one where ingress
    /// knows more (which currencies deposits take, that only an authorization has a hold timeout).
    /// </summary>
    public string MessageOf(IngressRefusal refusal, in Command command) => (refusal.Code, refusal.Input) switch
    {
        (ResultCode.InvalidCurrency, _) when command.Type == CommandType.Deposit && command.Currency.IsValid =>
            $"The platform holds no {command.Currency}: deposits are taken in {Options.Currencies}.",
        (ResultCode.InvalidHoldTimeout, _) when command.Type != CommandType.Authorize =>
            "'hold_timeout_ms' applies only to an authorization (\"capture\": false).",
        (ResultCode.NotAFundingAccount, _) =>
            $"A deposit comes from the platform's funding account of its currency (from account 0 names it); account {command.FromAccount} is not it.",
        _ => ResultCodes.Message(refusal.Code),
    };
}
