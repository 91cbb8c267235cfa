using System.Runtime.CompilerServices;

namespace RamPay.Core;

/// <summary>
/// The in-memory double-entry ledger and payment state machine. Single-threaded by design: one writer thread
/// applies every command in journal order. Deterministic: the only clock is the commands' journaled timestamps
/// (never the wall clock), and nothing is random, so replaying a journal gives the same state on any machine.
/// Business rejections are <see cref="ResultCode"/>s; a broken invariant throws <see cref="InvariantViolationException"/>.
/// </summary>
public sealed partial class Ledger : IReadOnlyLedger
{
    private readonly Account[] _accounts;
    private readonly PaymentStore _payments;
    private readonly HoldQueue _holds;
    private IdempotencyTable _idempotency;
    // Rules version 2 and later: the key log (hot in memory, the rest in the cold tier). Null under version 1.
    private KeyLog? _keyLog;
    private int _rulesVersion = 1;
    // Users are few and registered rarely: ordinary collections, off the payment path. Id = index + 1.
    private readonly List<User> _users = [];
    private readonly Dictionary<string, long> _userIdsByEmail = new(StringComparer.Ordinal);
    // Notes by payment id, beside the payment store rather than in it: most payments carry none, and a payment
    // without one then costs nothing (no field, no allocation). Only ever added to, like payments.
    private readonly Dictionary<long, PaymentNote> _notes = [];
    // Fraud scoring: settings, model and per-account features (LedgerFraud.cs). Replaced whole when a snapshot loads.
    private RamPay.Fraud.FraudState _fraud;
    private int _accountCount;
    private long _clockMs;
    private long _commandsApplied;
    // Running totals over all accounts, every currency together: after every command debits equal credits,
    // posted and pending. 128 bits, so that the sum of every balance can never overflow even when each one is near
    // long.MaxValue: a ledger-wide overflow would otherwise stop all money everywhere.
    private Int128 _debitsPosted, _creditsPosted, _debitsPending, _creditsPending;

    public Ledger(LedgerOptions? options = null) : this(options, fresh: true) { }

    /// <summary>
    /// <paramref name="fresh"/>: a ledger at its start (no command applied), whose payments' cold tier, if any, is told to
    /// forget everything; a ledger being read from a snapshot tells it where the snapshot stands instead (ReadState).
    /// </summary>
    private Ledger(LedgerOptions? options, bool fresh)
    {
        Options = options ?? new LedgerOptions();
        Options.Validate();
        Command.AssertLayout();
        _accounts = new Account[Options.MaxAccounts];
        _payments = new PaymentStore(Options.MaxPayments, Options.InitialPaymentCapacity, Options.ColdPayments, _notes);
        if (fresh) _payments.Recover(0);
        _holds = new HoldQueue(Options.MaxOpenHolds, _payments);
        _idempotency = new IdempotencyTable(Options.IdempotencyMaxKeys, Options.IdempotencyWindowMs);
        _fraud = new RamPay.Fraud.FraudState(Options.MaxAccounts, Options.FraudModels);
        _stage = new FraudStage(this, Options.MaxAccounts);
    }

    public LedgerOptions Options { get; }

    /// <summary>
    /// Told the id of each authorization whose hold lapses, on the applying thread, as it lapses (inside
    /// <see cref="Apply(in Command, ReadOnlySpan{byte}, out CommandResult)"/>, before the command itself runs). The
    /// sinks' follower uses it; the engine's writer leaves it null. Must not touch the ledger or throw.
    /// </summary>
    public Action<long>? HoldExpired { get; set; }
    public int AccountCount => _accountCount;
    public long PaymentCount => _payments.Count;
    public int OpenHoldCount => _holds.Count;
    public long CommandsApplied => _commandsApplied;
    /// <summary>The ledger's time: the largest journaled timestamp applied so far.</summary>
    public long ClockMs => _clockMs;
    /// <summary>Rules version 1's key table (empty once the ledger has moved to version 2: see <see cref="KeyLog"/>).</summary>
    public IdempotencyTable Idempotency => _idempotency;
    /// <summary>Rules version 2's key log, or null under version 1.</summary>
    public KeyLog? KeyLog => _keyLog;
    public long IdempotencyEvictedEarly => _keyLog?.EvictedEarly ?? _idempotency.EvictedEarly;
    /// <summary>The rules this ledger applies (1 = as written before rules were versioned). Changed only by an UpgradeRules command.</summary>
    public int RulesVersion => _rulesVersion;
    /// <summary>The newest rules this RamPay knows: a new data directory starts at it, an older one is upgraded to it at start.</summary>
    public const int NewestRulesVersion = 4;
    /// <summary>The rules from which payments are unbounded in number (no <c>too_many_payments</c>) and the state hash covers them by a running digest (docs/storage.md, "Payments").</summary>
    public const int PaymentsUnboundedRulesVersion = 3;
    /// <summary>Payments scored with this decision since this ledger object was made (not persisted; for metrics).</summary>
    public long FraudDecisions(RamPay.Fraud.FraudDecision decision) => Volatile.Read(ref _fraudDecisions[(int)decision]);
    private readonly long[] _fraudDecisions = new long[3]; // indexed by FraudDecision; the writer's plain increments
    public Int128 TotalDebitsPosted => _debitsPosted;
    public Int128 TotalCreditsPosted => _creditsPosted;
    public Int128 TotalDebitsPending => _debitsPending;
    public Int128 TotalCreditsPending => _creditsPending;

    public int UserCount => _users.Count;

    public User? GetUser(long id) => id >= 1 && id <= _users.Count ? _users[(int)id - 1] : null;

    /// <summary>The user registered with this email (compared case-insensitively), or null.</summary>
    public User? FindUserByEmail(string email) =>
        _userIdsByEmail.TryGetValue(UserProfile.NormalizeEmail(email), out long id) ? _users[(int)id - 1] : null;

    public bool AccountExists(long id) => id >= 1 && id <= _accountCount;
    public bool PaymentExists(long id) => _payments.Contains(id);

    /// <summary>
    /// The note the payment was created with (a Transfer or Authorize command's attachment), or null: none, or no such
    /// payment. A key replayed with another note does not change it: notes take no part in idempotency.
    /// </summary>
    public PaymentNote? GetPaymentNote(long paymentId) => _payments.ReadNote(paymentId);

    /// <summary>A copy of an account; the id must exist.</summary>
    public Account GetAccount(long id)
    {
        if (!AccountExists(id)) throw new ArgumentOutOfRangeException(nameof(id), id, "no such account");
        return _accounts[id - 1];
    }

    /// <summary>A copy of a payment; the id must exist.</summary>
    public Payment GetPayment(long id)
    {
        if (!PaymentExists(id)) throw new ArgumentOutOfRangeException(nameof(id), id, "no such payment");
        return _payments.ReadAny(id);
    }

    /// <summary>Where payments are kept, for metrics and tests (not logical state).</summary>
    public PaymentTierCounters PaymentTier => new(_payments.Count, _payments.ResidentCount, _payments.PoolCount, _payments.ColdLoads,
        _payments.PrefetchHits, _payments.WriterColdReads, Volatile.Read(ref _payments.ReadColdReads), _payments.HotFullWaits,
        _payments.Generations, _payments.RetiredThrough);

    /// <summary>
    /// Fills <paramref name="into"/> with the account's payment ids newest first, starting below
    /// <paramref name="beforeId"/> (0 = from the newest); returns how many. Walks the per-account history chain.
    /// </summary>
    public int History(long accountId, long beforeId, Span<long> into)
    {
        if (!AccountExists(accountId)) throw new ArgumentOutOfRangeException(nameof(accountId), accountId, "no such account");
        long id = _accounts[accountId - 1].LastPaymentId;
        int n = 0;
        try
        {
            if (beforeId != 0 && _payments.Contains(beforeId))
            {
                // A cursor that is one of the account's payments: the page starts at its predecessor in the chain, so a deep
                // page costs what the first one does (one read for the cursor, one per payment listed).
                var cursor = _payments.ReadAny(beforeId);
                if (cursor.FromAccount == accountId || cursor.ToAccount == accountId)
                {
                    id = cursor.FromAccount == accountId ? cursor.PrevForFrom : cursor.PrevForTo;
                    beforeId = 0;
                }
            }
            while (id != 0 && n < into.Length)
            {
                var p = _payments.ReadAny(id);
                if (beforeId == 0 || id < beforeId) into[n++] = id;
                id = p.FromAccount == accountId ? p.PrevForFrom : p.PrevForTo;
            }
        }
        catch (ColdPaymentNeededException e) when (e.AccountId == 0)
        {
            // A query's read of a cold payment not prefetched: the prefetch stage walks the rest of the chain from it (PaymentPrefetcher).
            throw new ColdPaymentNeededException(e.PaymentId, accountId, into.Length - n + 1);
        }
        return n;
    }

    /// <summary>
    /// Applies one command and writes its result. The command's <see cref="Command.TimestampMs"/> is its journaled
    /// time; the ledger's clock is the largest such time seen, so it never goes back even if producers race.
    /// </summary>
    public void Apply(in Command command, out CommandResult result) => Apply(command, [], out result);

    /// <summary>
    /// Applies a command that carries an attachment: RegisterUser's profile, or a Transfer's or Authorize's
    /// <see cref="PaymentNote"/> (optional: an empty attachment is no note). Other commands ignore it. A note is not
    /// part of the command as idempotency compares it: the same key and body with another note (or none) replays the
    /// first result, and the payment keeps the note it was created with.
    /// </summary>
    public void Apply(in Command command, ReadOnlySpan<byte> attachment, out CommandResult result) => Apply(command, attachment, default, out result);

    /// <summary>
    /// As <see cref="Apply(in Command, ReadOnlySpan{byte}, out CommandResult)"/>, with what the engine's prefetch stage found
    /// in the cold tier for the command's key (rules version 2 with a cold tier; ignored otherwise). Pure: no I/O, except the
    /// counted rare path of <see cref="KeyLog"/> (a prefetch made stale by a forced retirement).
    /// </summary>
    public void Apply(in Command command, ReadOnlySpan<byte> attachment, in KeyLookup prefetched, out CommandResult result) =>
        Apply(command, attachment, prefetched, default, out result);

    /// <summary>
    /// As the other overloads, with what the prefetch stage found in the payments' cold tier for the payment the command acts
    /// on (rules version 3 with a cold tier; ignored otherwise). Pure: memory and the slot only, except the counted rare
    /// paths (a prefetch made stale by a forced retirement).
    /// </summary>
    public void Apply(in Command command, ReadOnlySpan<byte> attachment, in KeyLookup prefetched, in PaymentLookup payment, out CommandResult result) =>
        Apply(command, attachment, prefetched, payment, default, out result);

    /// <summary>
    /// As the other overloads, with what the fraud stage wrote into the slot (rules version 4; LedgerFraud.cs). A command the
    /// stage has not seen (<see cref="StagedFraudState.None"/>) is staged here first, so replay scores as the live stage did.
    /// </summary>
    public void Apply(in Command command, ReadOnlySpan<byte> attachment, in KeyLookup prefetched, in PaymentLookup payment, in StagedFraud fraud, out CommandResult result)
    {
        TakeStaged(command, fraud);
        long paymentsBefore = _payments.Count;
        long now = command.TimestampMs > _clockMs ? command.TimestampMs : _clockMs;
        _clockMs = now;
        _commandsApplied++;
        if (_keyLog is null) _idempotency.Expire(now);
        ExpireHolds(now);

        if (command.Type == CommandType.Tick)
        {
            result = new CommandResult { Code = ResultCode.Ok };
        }
        else if (command.Type == CommandType.ConfigureFraud)
        {
            result = ConfigureFraud(attachment);
        }
        else if (command.Type == CommandType.UpgradeRules)
        {
            result = UpgradeRules(command);
        }
        else if (command.Key.IsEmpty)
        {
            result = new CommandResult { Code = ResultCode.IdempotencyKeyRequired };
        }
        else if (_keyLog is { } keys)
        {
            if (keys.TryFindLive(command, prefetched, now, out var entry))
            {
                result = IdempotencyTable.Answer(entry.Command, entry.Result, command);
            }
            else
            {
                if (PaymentLookup.Targets(command.Type)) _payments.EnsureResident(command.PaymentId, payment);
                result = Execute(command, attachment, now);
                if (_rulesVersion >= PaymentsUnboundedRulesVersion) MixPayments(command, attachment, paymentsBefore);
                keys.Insert(command, now, result);
            }
        }
        else
        {
            int slot = _idempotency.FindOrReserve(command, out bool existed);
            if (existed)
            {
                ref var entry = ref _idempotency[slot];
                result = IdempotencyTable.Answer(entry.Command, entry.Result, command);
            }
            else
            {
                result = Execute(command, attachment, now);
                _idempotency.Complete(slot, command, now, result);
            }
        }

        Invariant.Check(_debitsPosted == _creditsPosted, "total posted debits differ from total posted credits");
        Invariant.Check(_debitsPending == _creditsPending, "total pending debits differ from total pending credits");
        _keyLog?.AfterCommand(prefetched, _commandsApplied);
        _payments.AfterCommand(payment, _commandsApplied);
    }

    /// <summary>
    /// Moves to newer rules from this command on. Version 2: keys are kept for their whole window up to the key budget
    /// (the command's Amount); the keys version 1 still remembers are carried over, oldest first.
    /// </summary>
    private CommandResult UpgradeRules(in Command c)
    {
        if (c.Argument > NewestRulesVersion)
            throw new RulesVersionNotSupportedException(c.Argument, NewestRulesVersion);
        if (c.Argument <= _rulesVersion) return Fail(ResultCode.InvalidCommand);
        if (c.Argument >= FraudStageRulesVersion) FraudStageBound(c); // throws before anything changes (LedgerFraud.cs)
        if (c.Argument >= 2 && _keyLog is null)
        {
            if (c.Amount < 1) return Fail(ResultCode.InvalidCommand);
            var log = new KeyLog(c.Amount, Options.IdempotencyWindowMs, Options.ColdKeys);
            log.CarryEvictedEarly(_idempotency.EvictedEarly); // one counter over the ledger's life, for the host's alert
            foreach (int slot in _idempotency.SlotsOldestFirst())
            {
                ref var e = ref _idempotency[slot];
                log.CarryOver(e.Command, e.Result, _commandsApplied);
            }
            _keyLog = log;
            // Version 1's table is not used again: its memory (sized for its capacity) goes.
            _idempotency = new IdempotencyTable(1, Options.IdempotencyWindowMs);
        }
        if (c.Argument >= PaymentsUnboundedRulesVersion && _rulesVersion < PaymentsUnboundedRulesVersion) StartPaymentDigest();
        if (c.Argument >= FraudStageRulesVersion && _rulesVersion < FraudStageRulesVersion) StartFraudStage(c);
        _rulesVersion = (int)c.Argument;
        return new CommandResult { Code = ResultCode.Ok, Id = c.Argument };
    }

    private CommandResult Execute(in Command c, ReadOnlySpan<byte> attachment, long now)
    {
        if (c.Type is >= CommandType.Deposit and <= CommandType.Refund && (c.Flags & ~CommandFlags.Known) != 0)
            return Fail(ResultCode.InvalidCommand);
        switch (c.Type)
        {
            case CommandType.RegisterUser: return RegisterUser(c, attachment, now);
            case CommandType.OpenAccount: return OpenAccount(c, now);
            case CommandType.Deposit: return Transfer(c, now, PaymentKind.Deposit, noteBytes: []);
            case CommandType.Transfer: return Transfer(c, now, PaymentKind.Transfer, attachment);
            case CommandType.Authorize: return Transfer(c, now, PaymentKind.Authorization, attachment);
            case CommandType.Capture: return Capture(c);
            case CommandType.Void: return Void(c);
            case CommandType.Refund: return Refund(c, now);
            case CommandType.Freeze: return SetFrozen(c.FromAccount, true);
            case CommandType.Unfreeze: return SetFrozen(c.FromAccount, false);
            case CommandType.Review: return Review(c);
            case >= CommandType.DefineRewardRule and <= CommandType.OpenRewardsAccount: return ExecuteReward(c, attachment, now); // LedgerRewards.cs
            default: return Fail(ResultCode.InvalidCommand);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CommandResult Fail(ResultCode code) => new() { Code = code };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CommandResult Ok(long id) => new() { Code = ResultCode.Ok, Id = id };

    private CommandResult OpenAccount(in Command c, long now)
    {
        const AccountFlags known = AccountFlags.DebitsMustNotExceedCredits | AccountFlags.Funding;
        if (((AccountFlags)c.Flags & ~known) != 0) return Fail(ResultCode.InvalidCommand);
        if (!c.Currency.IsValid) return Fail(ResultCode.InvalidCurrency);
        if (_accountCount == _accounts.Length) return Fail(ResultCode.TooManyAccounts);
        ref var a = ref _accounts[_accountCount++];
        a = default;
        a.Id = _accountCount;
        a.Owner = c.Argument;
        a.CreatedAtMs = now;
        a.Currency = c.Currency;
        a.Flags = (AccountFlags)c.Flags;
        if (!_stage.Active) _fraud.AccountOpened(_accountCount); // feature memory now, not on the account's first scored payment (rules 4: the stage's)
        return Ok(a.Id);
    }

    /// <summary>Registers a user and opens their wallet in one command: both happen, or neither.</summary>
    private CommandResult RegisterUser(in Command c, ReadOnlySpan<byte> attachment, long now)
    {
        var profile = UserProfile.TryDecode(attachment);
        if (profile is null || !profile.IsValid || UserProfile.NormalizeEmail(profile.Email) != profile.Email
            || UserProfile.Digest(attachment) != c.Argument)
            return Fail(ResultCode.InvalidProfile);
        if (c.Flags > (byte)UserRole.Admin) return Fail(ResultCode.InvalidCommand);
        if (_userIdsByEmail.ContainsKey(profile.Email)) return Fail(ResultCode.EmailTaken);
        long userId = _users.Count + 1;
        var wallet = OpenAccount(new Command
        {
            Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.DebitsMustNotExceedCredits, Currency = c.Currency, Argument = userId,
        }, now);
        if (!wallet.IsOk) return wallet;
        _users.Add(new User(userId, profile.Email, profile.Name, profile.PasswordHash, (UserRole)c.Flags, wallet.Id, now));
        _userIdsByEmail.Add(profile.Email, userId);
        return new CommandResult { Code = ResultCode.Ok, Id = userId, SecondaryId = wallet.Id };
    }

    /// <summary>True when the account exists and belongs to the user (an unknown account is reported later as not found).</summary>
    private bool OwnedByOrUnknown(long userId, long accountId) => !AccountExists(accountId) || _accounts[accountId - 1].Owner == userId;

    private CommandResult SetFrozen(long accountId, bool frozen)
    {
        if (!AccountExists(accountId)) return Fail(ResultCode.AccountNotFound);
        _accounts[accountId - 1].Frozen = frozen;
        return Ok(accountId);
    }

    /// <summary>Checks that money may move from one account to the other; Ok or the reason it may not.</summary>
    private ResultCode CheckMovement(long fromId, long toId, long amount, Currency currency)
    {
        if (amount <= 0) return ResultCode.InvalidAmount;
        if (!currency.IsValid) return ResultCode.InvalidCurrency;
        if (!AccountExists(fromId) || !AccountExists(toId)) return ResultCode.AccountNotFound;
        if (fromId == toId) return ResultCode.SameAccount;
        ref var from = ref _accounts[fromId - 1];
        ref var to = ref _accounts[toId - 1];
        if (from.Currency != currency || to.Currency != currency) return ResultCode.CurrencyMismatch;
        if (from.Frozen || to.Frozen) return ResultCode.AccountFrozen;
        if (from.IsWallet && from.Available < amount) return ResultCode.InsufficientFunds;
        // Every balance field must stay representable; posted plus pending is the largest of each side.
        if (long.MaxValue - amount < Math.Max(from.DebitsPosted + from.DebitsPending, to.CreditsPosted + to.CreditsPending))
            return ResultCode.Overflow;
        return ResultCode.Ok;
    }

    private CommandResult Transfer(in Command c, long now, PaymentKind kind, ReadOnlySpan<byte> noteBytes)
    {
        // A malformed note is refused first, whatever the accounts say: the host should have refused it before
        // submitting (as it does a bad amount), so this is a malformed request, not a business rejection.
        PaymentNote? note = null;
        if (!noteBytes.IsEmpty && (note = DecodeNote(noteBytes)) is null) return Fail(ResultCode.InvalidPaymentNote);
        // Whether a deposit's source may fund at all is asked before whether it has the money.
        if (kind == PaymentKind.Deposit && AccountExists(c.FromAccount) && (_accounts[c.FromAccount - 1].Flags & AccountFlags.Funding) == 0)
            return Fail(ResultCode.NotAFundingAccount);
        if ((c.Flags & CommandFlags.OwnerOnly) != 0 && !OwnedByOrUnknown(c.ClientId, kind == PaymentKind.Deposit ? c.ToAccount : c.FromAccount))
            return Fail(ResultCode.NotAccountOwner);
        if (kind == PaymentKind.Authorization && (c.Argument < 0 || c.Argument > Options.MaxHoldTimeoutMs))
            return Fail(ResultCode.InvalidHoldTimeout);
        ResultCode check = CheckMovement(c.FromAccount, c.ToAccount, c.Amount, c.Currency);
        if (check != ResultCode.Ok) return Fail(check);
        if (_payments.Count == _payments.Capacity) return Fail(ResultCode.TooManyPayments);
        // Every scored payment may be held, so scoring needs a free hold slot as an authorization does.
        bool scored = kind != PaymentKind.Deposit && WillScore();
        if ((kind == PaymentKind.Authorization || scored) && _holds.Count == _holds.Capacity) return Fail(ResultCode.TooManyHolds);
        // Scored after every check has passed, so a payment refused for funds or ownership leaves no trace in the features
        // (rules 1 to 3; under 4 the fraud stage has scored every attempt, and this takes its verdict: LedgerFraud.cs).
        var verdict = scored ? Verdict(c, now) : default;
        if (scored) _fraudDecisions[(int)verdict.Decision]++;

        ref var p = ref NewPayment(kind, c.FromAccount, c.ToAccount, c.Amount, c.Currency, now);
        if (scored && RecordVerdict(ref p, verdict, note) is { } declined) return declined;
        bool held = scored && verdict.Decision == RamPay.Fraud.FraudDecision.Review;
        if (kind == PaymentKind.Authorization || held)
        {
            p.Status = held ? PaymentStatus.HeldForReview : PaymentStatus.Authorized;
            // A held authorization keeps its own expiry (the hold lapses when it would have); a held transfer waits
            // for review at most the configured review timeout.
            p.ExpiresAtMs = now + (kind == PaymentKind.Authorization ? (c.Argument > 0 ? c.Argument : Options.DefaultHoldTimeoutMs) : _fraud.Settings.ReviewTimeoutMs);
            MovePending(c.FromAccount, c.ToAccount, c.Amount);
            _holds.Add(p.Id);
        }
        else
        {
            p.Status = PaymentStatus.Posted;
            p.Captured = c.Amount;
            MovePosted(c.FromAccount, c.ToAccount, c.Amount);
        }
        if (note is not null) _notes.Add(p.Id, note);
        return Ok(p.Id);
    }

    /// <summary>A note the ledger keeps: decodes, is valid, and says something (an empty note is a host bug: send no attachment). Else null.</summary>
    private static PaymentNote? DecodeNote(ReadOnlySpan<byte> bytes) =>
        PaymentNote.TryDecode(bytes) is { IsEmpty: false, IsValid: true } note ? note : null;

    private CommandResult Capture(in Command c)
    {
        ResultCode state = CheckOpenHold(c);
        if (state != ResultCode.Ok) return Fail(state);
        ref var p = ref _payments[c.PaymentId];
        long amount = c.Amount == 0 ? p.Amount : c.Amount;
        if (amount < 0) return Fail(ResultCode.InvalidAmount);
        // Capture may leave the currency out (like the amount): it is the authorization's.
        if (!c.Currency.IsNone && c.Currency != p.Currency) return Fail(ResultCode.CurrencyMismatch);
        if (amount > p.Amount) return Fail(ResultCode.AmountExceedsAuthorized);
        if (_accounts[p.FromAccount - 1].Frozen || _accounts[p.ToAccount - 1].Frozen) return Fail(ResultCode.AccountFrozen);

        // A capture settles the captured part and releases the rest of the hold (Stripe's partial capture).
        ReleaseHold(ref p, PaymentStatus.Captured);
        MovePosted(p.FromAccount, p.ToAccount, amount);
        p.Captured = amount;
        return Ok(p.Id);
    }

    private CommandResult Void(in Command c)
    {
        ResultCode state = CheckOpenHold(c);
        if (state != ResultCode.Ok) return Fail(state);
        ref var p = ref _payments[c.PaymentId];
        // Voiding only gives funds back, so a frozen account does not stop it.
        ReleaseHold(ref p, PaymentStatus.Voided);
        return Ok(p.Id);
    }

    /// <summary>
    /// Ok when the payment exists, the sender may act on it (either side, for a user's command) and it is an
    /// authorization still holding funds; otherwise why not.
    /// </summary>
    private ResultCode CheckOpenHold(in Command c)
    {
        if (!_payments.Contains(c.PaymentId)) return ResultCode.PaymentNotFound;
        ref var p = ref _payments[c.PaymentId];
        if ((c.Flags & CommandFlags.OwnerOnly) != 0 && !OwnedByOrUnknown(c.ClientId, p.FromAccount) && !OwnedByOrUnknown(c.ClientId, p.ToAccount))
            return ResultCode.NotAccountOwner;
        if (p.Kind != PaymentKind.Authorization) return ResultCode.PaymentNotAuthorized;
        if (p.Status == PaymentStatus.Expired) return ResultCode.HoldExpired;
        if (p.Status != PaymentStatus.Authorized) return ResultCode.PaymentNotAuthorized;
        return ResultCode.Ok;
    }

    private CommandResult Refund(in Command c, long now)
    {
        if (!_payments.Contains(c.PaymentId)) return Fail(ResultCode.PaymentNotFound);
        ref var original = ref _payments[c.PaymentId];
        // A refund takes money back from the payee, so only the payee may give it.
        if ((c.Flags & CommandFlags.OwnerOnly) != 0 && !OwnedByOrUnknown(c.ClientId, original.ToAccount)) return Fail(ResultCode.NotAccountOwner);
        bool settled = (original.Kind == PaymentKind.Transfer && original.Status == PaymentStatus.Posted)
                       || (original.Kind == PaymentKind.Authorization && original.Status == PaymentStatus.Captured);
        if (!settled) return Fail(ResultCode.PaymentNotCaptured);
        if (c.Amount <= 0) return Fail(ResultCode.InvalidAmount);
        // Like capture, a refund may leave the currency out: it is the payment's.
        if (!c.Currency.IsNone && c.Currency != original.Currency) return Fail(ResultCode.CurrencyMismatch);
        if (c.Amount > original.Captured - original.Refunded) return Fail(ResultCode.AmountExceedsCaptured);
        // The money goes back from the payee to the payer.
        ResultCode check = CheckMovement(original.ToAccount, original.FromAccount, c.Amount, original.Currency);
        if (check != ResultCode.Ok) return Fail(check);
        if (_payments.Count == _payments.Capacity) return Fail(ResultCode.TooManyPayments);

        long originalId = original.Id;
        ref var refund = ref NewPayment(PaymentKind.Refund, original.ToAccount, original.FromAccount, c.Amount, original.Currency, now);
        refund.Status = PaymentStatus.Posted;
        refund.Captured = c.Amount;
        refund.ParentId = originalId;
        MovePosted(refund.FromAccount, refund.ToAccount, c.Amount);
        _payments[originalId].Refunded += c.Amount;
        return Ok(refund.Id);
    }

    private ref Payment NewPayment(PaymentKind kind, long fromId, long toId, long amount, Currency currency, long now)
    {
        ref var p = ref _payments.Add();
        p.Kind = kind;
        p.FromAccount = fromId;
        p.ToAccount = toId;
        p.Amount = amount;
        p.Currency = currency;
        p.CreatedAtMs = now;
        ref var from = ref _accounts[fromId - 1];
        ref var to = ref _accounts[toId - 1];
        p.PrevForFrom = from.LastPaymentId;
        p.PrevForTo = to.LastPaymentId;
        from.LastPaymentId = p.Id;
        to.LastPaymentId = p.Id;
        return ref p;
    }

    private void MovePosted(long fromId, long toId, long amount)
    {
        ref var from = ref _accounts[fromId - 1];
        ref var to = ref _accounts[toId - 1];
        from.DebitsPosted += amount;
        to.CreditsPosted += amount;
        _debitsPosted += amount;
        _creditsPosted += amount;
        Invariant.Check(!from.IsWallet || from.DebitsPosted + from.DebitsPending <= from.CreditsPosted, "a wallet's debits exceed its credits");
    }

    private void MovePending(long fromId, long toId, long amount)
    {
        ref var from = ref _accounts[fromId - 1];
        ref var to = ref _accounts[toId - 1];
        from.DebitsPending += amount;
        to.CreditsPending += amount;
        _debitsPending += amount;
        _creditsPending += amount;
        Invariant.Check(!from.IsWallet || from.DebitsPosted + from.DebitsPending <= from.CreditsPosted, "a wallet's holds exceed its credits");
    }

    /// <summary>Takes an open hold off the books: its pending amounts go, and it leaves the hold queue.</summary>
    private void ReleaseHold(ref Payment p, PaymentStatus newStatus)
    {
        Invariant.Check(p.Status is PaymentStatus.Authorized or PaymentStatus.HeldForReview, "releasing a hold that is not open");
        ref var from = ref _accounts[p.FromAccount - 1];
        ref var to = ref _accounts[p.ToAccount - 1];
        from.DebitsPending -= p.Amount;
        to.CreditsPending -= p.Amount;
        _debitsPending -= p.Amount;
        _creditsPending -= p.Amount;
        Invariant.Check(from.DebitsPending >= 0 && to.CreditsPending >= 0, "pending balance below zero");
        _holds.Remove(p.Id);
        p.Status = newStatus;
    }

    /// <summary>Expires every hold whose time has come. O(1) when none has: a look at the heap's top.</summary>
    private void ExpireHolds(long now)
    {
        while (_holds.Count > 0)
        {
            ref var p = ref _payments[_holds.PeekId];
            if (p.ExpiresAtMs > now) return;
            long id = p.Id;
            if (p.Status == PaymentStatus.HeldForReview) p.FraudReasons |= RamPay.Fraud.FraudReasons.ReviewExpired;
            ReleaseHold(ref p, PaymentStatus.Expired);
            if (_rulesVersion >= PaymentsUnboundedRulesVersion) MixChanged(p);
            HoldExpired?.Invoke(id);
        }
    }

    /// <summary>Every payment id there is, 1 to Count (resident or cold).</summary>
    private IEnumerable<long> AllPaymentIds()
    {
        for (long id = 1; id <= _payments.Count; id++) yield return id;
    }

    /// <summary>
    /// Re-derives every total from the accounts, payments and holds and checks they agree: O(state). Tests call it
    /// after every step; the engine calls it after replay and around snapshots. Throws on the first disagreement.
    /// </summary>
    public void VerifyInvariants()
    {
        Int128 dp = 0, cp = 0, dq = 0, cq = 0;
        for (int i = 0; i < _accountCount; i++)
        {
            ref var a = ref _accounts[i];
            // Messages are built only on failure: this loop runs over every account.
            if (a.Id != i + 1) Invariant.Fail($"account {i + 1} holds id {a.Id}");
            if (a.DebitsPosted < 0 || a.CreditsPosted < 0 || a.DebitsPending < 0 || a.CreditsPending < 0) Invariant.Fail($"account {a.Id} has a negative balance field");
            if (a.IsWallet && a.DebitsPosted + a.DebitsPending > a.CreditsPosted) Invariant.Fail($"wallet {a.Id} is overdrawn");
            dp += a.DebitsPosted; cp += a.CreditsPosted; dq += a.DebitsPending; cq += a.CreditsPending;
        }
        Invariant.Check(dp == _debitsPosted && cp == _creditsPosted && dq == _debitsPending && cq == _creditsPending, "running totals differ from the accounts");
        Invariant.Check(dp == cp && dq == cq, "debits differ from credits");

        Int128 heldSum = 0, postedSum = 0;
        int open = 0;
        // With the payments' cold tier, only the resident ones are walked (open holds always are); the posted total then
        // cannot be re-derived from the payments, the rest still is.
        foreach (long id in _payments.HasColdTier ? _payments.ResidentIds() : AllPaymentIds())
        {
            ref var p = ref _payments[id];
            if (p.Id != id) Invariant.Fail($"payment {id} holds id {p.Id}");
            if (p.Refunded < 0 || p.Refunded > p.Captured || p.Captured > p.Amount) Invariant.Fail($"payment {id} amounts out of order");
            if (p.Status is PaymentStatus.HeldForReview or PaymentStatus.Declined && p.FraudModel == 0) Invariant.Fail($"payment {id} was held or declined but never scored");
            if (p.FraudModel > _fraud.ModelCount) Invariant.Fail($"payment {id} names fraud model {p.FraudModel}; the ledger knows {_fraud.ModelCount}");
            if (p.Status == PaymentStatus.Declined && p.Captured != 0) Invariant.Fail($"declined payment {id} settled money");
            if (p.Status is PaymentStatus.Authorized or PaymentStatus.HeldForReview)
            {
                open++;
                heldSum += p.Amount;
                if (p.HoldIndex < 0 || p.HoldIndex >= _holds.Count || _holds.Items[p.HoldIndex] != id) Invariant.Fail($"open hold {id} missing from the hold queue");
            }
            else if (p.HoldIndex != -1)
            {
                Invariant.Fail($"closed payment {id} still in the hold queue");
            }
            postedSum += p.Captured;
        }
        Invariant.Check(open == _holds.Count, "hold queue size differs from the open authorizations and held payments");
        Invariant.Check(_userIdsByEmail.Count == _users.Count, "user email index out of step");
        for (int i = 0; i < _users.Count; i++)
        {
            var u = _users[i];
            if (u.Id != i + 1 || !_userIdsByEmail.TryGetValue(u.Email, out long indexed) || indexed != u.Id) Invariant.Fail($"user {i + 1} out of place");
            if (!AccountExists(u.WalletAccountId) || _accounts[u.WalletAccountId - 1].Owner != u.Id) Invariant.Fail($"user {u.Id}'s wallet is missing or not theirs");
        }
        // Notes were validated on the way in (Apply, ReadState) and are immutable: only where they sit is checked here,
        // since re-validating every URL would lengthen each snapshot's pause of the writer.
        foreach (long id in _notes.Keys)
        {
            if (!_payments.Contains(id) || _payments.ReadAny(id).Kind is not (PaymentKind.Transfer or PaymentKind.Authorization))
                Invariant.Fail($"a note is kept for payment {id}, which is not a transfer or authorization");
        }
        Invariant.Check(heldSum == dq, "pending totals differ from the open authorizations");
        if (!_payments.SomeCold) Invariant.Check(postedSum == dp, "posted totals differ from the settled payments");
        VerifyRewards();
    }
}
