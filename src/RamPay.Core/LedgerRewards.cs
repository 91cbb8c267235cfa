namespace RamPay.Core;

/// <summary>
/// Cashback inside the ledger (docs/rewards.md): rules with their history, one rewards funding account per currency,
/// and the rewards themselves, each naming its source payment and rule. The ledger, not a consumer's memory or an
/// expiring idempotency key, guarantees at most one paid reward per (source payment, rule): the pair is looked up on
/// every <see cref="CommandType.IssueReward"/>, for ever, identically on replay. All of it is off the payment path:
/// a Transfer never looks at this file, so the apply path of payments is unchanged.
/// </summary>
public sealed partial class Ledger
{
    /// <summary>The most reward rules a ledger holds (rules are few: admins define them by hand).</summary>
    public const int MaxRewardRules = 1024;

    private readonly List<RewardRule> _rewardRules = [];
    private Reward[] _rewards = [];
    private long _rewardCount;
    // Derived (rebuilt on load): the newest reward of each source payment and of each payer account, heads of chains
    // through Reward.PrevForSource / PrevForAccount; and the cashback issued per (rule, user, UTC month).
    private readonly Dictionary<long, long> _rewardHeadBySource = [];
    private readonly Dictionary<long, long> _rewardHeadByAccount = [];
    private readonly Dictionary<(int Rule, long User, int Month), long> _rewardMonthly = [];
    // Persisted: the rewards funding account of each currency (by packed code).
    private readonly Dictionary<ushort, long> _rewardsAccounts = [];

    public IReadOnlyList<RewardRule> RewardRules => _rewardRules;
    public long RewardCount => _rewardCount;

    /// <summary>The rewards funding account of the currency, or 0 when none is open.</summary>
    public long RewardsAccount(Currency currency) => _rewardsAccounts.GetValueOrDefault(currency.Code);

    /// <summary>Every rewards funding account, by currency, in currency order.</summary>
    public IReadOnlyList<(Currency Currency, long Account)> RewardsAccounts =>
        [.. _rewardsAccounts.OrderBy(kv => kv.Key).Select(kv => (new Currency(kv.Key), kv.Value))];

    public RewardRule? GetRewardRule(long id) => id >= 1 && id <= _rewardRules.Count ? _rewardRules[(int)id - 1] : null;

    /// <summary>A copy of a reward; the id must exist.</summary>
    public Reward GetReward(long id)
    {
        if (id < 1 || id > _rewardCount) throw new ArgumentOutOfRangeException(nameof(id), id, "no such reward");
        return _rewards[id - 1];
    }

    /// <summary>The reward of (source payment, rule), if there is one.</summary>
    public bool TryFindReward(long sourcePaymentId, long ruleId, out Reward reward)
    {
        long id = FindReward(sourcePaymentId, ruleId);
        reward = id == 0 ? default : _rewards[id - 1];
        return id != 0;
    }

    /// <summary>The rewards of a source payment (every rule), oldest first.</summary>
    public IReadOnlyList<Reward> RewardsOfPayment(long sourcePaymentId)
    {
        var list = new List<Reward>();
        for (long id = _rewardHeadBySource.GetValueOrDefault(sourcePaymentId); id != 0; id = _rewards[id - 1].PrevForSource) list.Add(_rewards[id - 1]);
        list.Reverse();
        return list;
    }

    /// <summary>Fills <paramref name="into"/> with the account's reward ids newest first, below <paramref name="beforeId"/> (0 = from the newest).</summary>
    public int RewardsOfAccount(long accountId, long beforeId, Span<long> into)
    {
        int n = 0;
        for (long id = _rewardHeadByAccount.GetValueOrDefault(accountId); id != 0 && n < into.Length; id = _rewards[id - 1].PrevForAccount)
            if (beforeId == 0 || id < beforeId) into[n++] = id;
        return n;
    }

    private long FindReward(long sourcePaymentId, long ruleId)
    {
        for (long id = _rewardHeadBySource.GetValueOrDefault(sourcePaymentId); id != 0; id = _rewards[id - 1].PrevForSource)
            if (_rewards[id - 1].RuleId == ruleId) return id;
        return 0;
    }

    /// <summary>The rare commands' dispatch: reward rules, rewards and the rewards accounts. Admin or system only.</summary>
    private CommandResult ExecuteReward(in Command c, ReadOnlySpan<byte> attachment, long now)
    {
        if ((c.Flags & ~CommandFlags.Known) != 0) return Fail(ResultCode.InvalidCommand);
        if ((c.Flags & CommandFlags.OwnerOnly) != 0) return Fail(ResultCode.AdminRequired);
        return c.Type switch
        {
            CommandType.DefineRewardRule => DefineRewardRule(c, attachment, now),
            CommandType.EndRewardRule => EndRewardRule(c, now),
            CommandType.IssueReward => IssueReward(c, now),
            CommandType.ReverseReward => ReverseReward(c, now),
            CommandType.OpenRewardsAccount => OpenRewardsAccount(c, now),
            _ => Fail(ResultCode.InvalidCommand),
        };
    }

    private CommandResult DefineRewardRule(in Command c, ReadOnlySpan<byte> attachment, long now)
    {
        var terms = RewardRuleTerms.TryDecode(attachment);
        if (terms is null || !terms.IsValid || RewardRuleTerms.Digest(attachment) != c.Amount) return Fail(ResultCode.InvalidRewardRule);
        RewardRule rule;
        if (c.Argument == 0)
        {
            if (_rewardRules.Count == MaxRewardRules) return Fail(ResultCode.TooManyRewardRules);
            rule = new RewardRule(_rewardRules.Count + 1, now);
            _rewardRules.Add(rule);
        }
        else
        {
            if (GetRewardRule(c.Argument) is not { } found) return Fail(ResultCode.RewardRuleNotFound);
            if (found.Ended) return Fail(ResultCode.RewardRuleEnded);
            rule = found;
        }
        var version = new RewardRuleVersion(rule.VersionList.Count + 1, now, terms, Ended: false);
        rule.VersionList.Add(version);
        return new CommandResult { Code = ResultCode.Ok, Id = rule.Id, SecondaryId = version.Number };
    }

    private CommandResult EndRewardRule(in Command c, long now)
    {
        if (GetRewardRule(c.Argument) is not { } rule) return Fail(ResultCode.RewardRuleNotFound);
        if (rule.Ended) return Fail(ResultCode.RewardRuleEnded);
        var version = new RewardRuleVersion(rule.VersionList.Count + 1, now, rule.Current.Terms, Ended: true);
        rule.VersionList.Add(version);
        return new CommandResult { Code = ResultCode.Ok, Id = rule.Id, SecondaryId = version.Number };
    }

    private CommandResult OpenRewardsAccount(in Command c, long now)
    {
        if (!c.Currency.IsValid) return Fail(ResultCode.InvalidCurrency);
        if (_rewardsAccounts.TryGetValue(c.Currency.Code, out long existing)) return new CommandResult { Code = ResultCode.RewardsAccountExists, Id = existing };
        var opened = OpenAccount(new Command
        {
            Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.DebitsMustNotExceedCredits, Currency = c.Currency, Argument = 0,
        }, now);
        if (opened.IsOk) _rewardsAccounts.Add(c.Currency.Code, opened.Id);
        return opened;
    }

    /// <summary>A settled payment (a posted transfer or a captured authorization): the only kind that earns cashback.</summary>
    private static bool IsSettledPurchase(in Payment p) =>
        (p.Kind == PaymentKind.Transfer && p.Status == PaymentStatus.Posted)
        || (p.Kind == PaymentKind.Authorization && p.Status == PaymentStatus.Captured);

    private static int MonthOf(long timeMs)
    {
        var t = DateTimeOffset.FromUnixTimeMilliseconds(Math.Max(0, timeMs)).UtcDateTime;
        return t.Year * 12 + t.Month - 1;
    }

    private CommandResult IssueReward(in Command c, long now)
    {
        if (GetRewardRule(c.Argument) is not { } rule) return Fail(ResultCode.RewardRuleNotFound);
        if (!_payments.Contains(c.PaymentId)) return Fail(ResultCode.PaymentNotFound);
        long existing = FindReward(c.PaymentId, rule.Id);
        if (existing != 0 && _rewards[existing - 1].Status == RewardStatus.Issued)
            return new CommandResult { Code = ResultCode.RewardExists, Id = existing };

        ref var source = ref _payments[c.PaymentId];
        if (!IsSettledPurchase(source)) return Fail(ResultCode.RewardNotEligible);
        // The terms in force when the payment was made, whatever changed since.
        var version = rule.VersionAt(source.CreatedAtMs);
        if (version is null) return Fail(ResultCode.RewardNotEligible);
        var terms = version.Terms;
        if (source.Currency != terms.Currency || !terms.CoversTime(source.CreatedAtMs) || source.Captured < terms.MinAmount
            || !terms.CoversPayee(source.ToAccount))
            return Fail(ResultCode.RewardNotEligible);
        ref var payer = ref _accounts[source.FromAccount - 1];
        long payee = _accounts[source.ToAccount - 1].Owner;
        // Platform money earns nothing, nor does moving money between two accounts of one user.
        if (payer.Owner == 0 || payer.Owner == payee) return Fail(ResultCode.RewardNotEligible);

        long amount = (long)((Int128)source.Captured * terms.PercentBps / 10_000);
        if (terms.MaxPerPayment > 0) amount = Math.Min(amount, terms.MaxPerPayment);
        var month = (rule.Id, payer.Owner, MonthOf(source.CreatedAtMs));
        if (terms.MaxPerUserPerMonth > 0) amount = Math.Min(amount, terms.MaxPerUserPerMonth - _rewardMonthly.GetValueOrDefault(month));
        if (amount <= 0) return Fail(ResultCode.RewardNotEligible);

        // Refunds made before the reward: that share of it is cancelled at once, never paid out.
        long cancelled = ReversalTarget(amount, source);
        long payout = amount - cancelled;
        long rewardsAccount = _rewardsAccounts.GetValueOrDefault(source.Currency.Code);
        ResultCode cannotPay = ResultCode.Ok;
        if (rewardsAccount == 0) cannotPay = ResultCode.AccountNotFound;
        else if (payout > 0) cannotPay = CheckMovement(rewardsAccount, source.FromAccount, payout, source.Currency);
        if (cannotPay == ResultCode.Ok && payout > 0 && _payments.Count == _payments.Capacity) cannotPay = ResultCode.TooManyPayments;

        long id = existing;
        if (id == 0)
        {
            if (_rewardCount == Options.MaxPayments) return Fail(ResultCode.TooManyPayments);
            id = AddReward(c.PaymentId, rule.Id, source.FromAccount);
        }
        ref var reward = ref _rewards[id - 1];
        reward.RuleVersion = version.Number;
        reward.UserId = payer.Owner;
        reward.Currency = source.Currency;
        reward.Amount = amount;
        reward.IssuedAtMs = now;
        if (cannotPay != ResultCode.Ok)
        {
            reward.Status = RewardStatus.Skipped;
            reward.SkipReason = cannotPay;
            return new CommandResult { Code = ResultCode.RewardSkipped, Id = id };
        }

        long sourceId = source.Id;
        long payerId = source.FromAccount;
        reward.Status = RewardStatus.Issued;
        reward.SkipReason = ResultCode.Ok;
        reward.PaidOut = payout;
        reward.ReversalDue = cancelled;
        reward.Recovered = cancelled;
        if (payout > 0)
        {
            ref var p = ref NewPayment(PaymentKind.Reward, rewardsAccount, payerId, payout, reward.Currency, now);
            p.Status = PaymentStatus.Posted;
            p.Captured = payout;
            p.ParentId = sourceId;
            MovePosted(rewardsAccount, payerId, payout);
            reward.PayoutPaymentId = p.Id;
        }
        _rewardMonthly[month] = _rewardMonthly.GetValueOrDefault(month) + amount;
        return new CommandResult { Code = ResultCode.Ok, Id = id, SecondaryId = reward.PayoutPaymentId };
    }

    /// <summary>floor(reward × refunded / captured): the cumulative reversal the source payment's refunds call for.</summary>
    private static long ReversalTarget(long amount, in Payment source) =>
        source.Captured == 0 ? 0 : (long)((Int128)amount * source.Refunded / source.Captured);

    private long AddReward(long sourcePaymentId, int ruleId, long account)
    {
        if (_rewardCount == _rewards.Length) Array.Resize(ref _rewards, Math.Max(1024, _rewards.Length * 2));
        long id = ++_rewardCount;
        ref var r = ref _rewards[id - 1];
        r = default;
        r.Id = id;
        r.SourcePaymentId = sourcePaymentId;
        r.RuleId = ruleId;
        r.Account = account;
        LinkReward(ref r);
        return id;
    }

    private void LinkReward(ref Reward r)
    {
        r.PrevForSource = _rewardHeadBySource.GetValueOrDefault(r.SourcePaymentId);
        _rewardHeadBySource[r.SourcePaymentId] = r.Id;
        r.PrevForAccount = _rewardHeadByAccount.GetValueOrDefault(r.Account);
        _rewardHeadByAccount[r.Account] = r.Id;
    }

    /// <summary>
    /// Brings a reward in line with its source payment's refunds: takes back what the payer has of what is due, and
    /// leaves the rest owed (a later ReverseReward takes it when the payer has funds). Never refused for want of funds.
    /// </summary>
    private CommandResult ReverseReward(in Command c, long now)
    {
        if (!_payments.Contains(c.PaymentId)) return Fail(ResultCode.PaymentNotFound);
        long id = FindReward(c.PaymentId, c.Argument);
        if (id == 0) return Fail(ResultCode.RewardNotFound);
        ref var reward = ref _rewards[id - 1];
        if (reward.Status != RewardStatus.Issued) return new CommandResult { Code = ResultCode.Ok, SecondaryId = id };
        long target = ReversalTarget(reward.Amount, _payments[c.PaymentId]);
        if (target > reward.ReversalDue) reward.ReversalDue = target;
        long due = reward.ReversalDue - reward.Recovered;
        if (due <= 0) return new CommandResult { Code = ResultCode.Ok, SecondaryId = id };

        long rewardsAccount = _rewardsAccounts[reward.Currency.Code];
        long take = Math.Min(due, Math.Max(0, _accounts[reward.Account - 1].Available));
        if (take > 0 && (CheckMovement(reward.Account, rewardsAccount, take, reward.Currency) != ResultCode.Ok || _payments.Count == _payments.Capacity))
            take = 0; // frozen, or no room: owed, for a later reversal
        if (take == 0) return new CommandResult { Code = ResultCode.Ok, SecondaryId = id };
        ref var p = ref NewPayment(PaymentKind.RewardReversal, reward.Account, rewardsAccount, take, reward.Currency, now);
        p.Status = PaymentStatus.Posted;
        p.Captured = take;
        p.ParentId = reward.SourcePaymentId;
        MovePosted(reward.Account, rewardsAccount, take);
        reward.Recovered += take;
        return new CommandResult { Code = ResultCode.Ok, Id = p.Id, SecondaryId = id };
    }

    // ---- invariants and state -------------------------------------------------------------------------------------

    /// <summary>Checks every reward against its payments and rule (O(rewards)); part of <see cref="VerifyInvariants"/>.</summary>
    private void VerifyRewards()
    {
        foreach (var (code, account) in _rewardsAccounts)
        {
            if (!AccountExists(account)) Invariant.Fail($"rewards account {account} does not exist");
            ref var a = ref _accounts[account - 1];
            if (!a.IsWallet || a.Owner != 0 || a.Currency.Code != code) Invariant.Fail($"rewards account {account} is not a platform wallet of its currency");
        }
        var seen = new HashSet<(long, int)>();
        for (long id = 1; id <= _rewardCount; id++)
        {
            ref var r = ref _rewards[id - 1];
            if (r.Id != id) Invariant.Fail($"reward {id} holds id {r.Id}");
            if (!_payments.Contains(r.SourcePaymentId) || GetRewardRule(r.RuleId) is null || !AccountExists(r.Account)) Invariant.Fail($"reward {id} names a missing payment, rule or account");
            if (!seen.Add((r.SourcePaymentId, r.RuleId))) Invariant.Fail($"payment {r.SourcePaymentId} has two rewards under rule {r.RuleId}");
            if (r.Status is not (RewardStatus.Issued or RewardStatus.Skipped)) Invariant.Fail($"reward {id} has status {r.Status}");
            if (r.Amount <= 0 || r.PaidOut < 0 || r.PaidOut > r.Amount || r.Recovered < r.Amount - r.PaidOut || r.Recovered > r.ReversalDue || r.ReversalDue > r.Amount)
                if (r.Status == RewardStatus.Issued) Invariant.Fail($"reward {id} amounts out of order");
            if (r.PayoutPaymentId != 0)
            {
                if (!_payments.Contains(r.PayoutPaymentId)) Invariant.Fail($"reward {id}'s payout is missing");
                var p = _payments.ReadAny(r.PayoutPaymentId);
                if (p.Kind != PaymentKind.Reward || p.ParentId != r.SourcePaymentId || p.ToAccount != r.Account || p.Amount != r.PaidOut)
                    Invariant.Fail($"reward {id}'s payout {p.Id} does not match it");
            }
        }
    }

    private const uint RewardsMagic = 0x44575252; // "RRWD" little-endian
    private const int RewardsSectionVersion = 1;

    private bool HasRewardState => _rewardRules.Count > 0 || _rewardCount > 0 || _rewardsAccounts.Count > 0;

    /// <summary>
    /// The rewards section: written last, and only once the ledger has any reward state, so that a ledger without
    /// rewards (every journal written before them) keeps its state bytes and its hash. docs/journal-format.md.
    /// </summary>
    private void WriteRewards(BinaryWriter w)
    {
        if (!HasRewardState) return;
        w.Write(RewardsMagic);
        w.Write(RewardsSectionVersion);
        var accounts = _rewardsAccounts.OrderBy(kv => kv.Key).ToArray();
        w.Write(accounts.Length);
        foreach (var (code, account) in accounts) { w.Write(code); w.Write(account); }
        w.Write(_rewardRules.Count);
        foreach (var rule in _rewardRules)
        {
            w.Write(rule.Id); w.Write(rule.CreatedAtMs); w.Write(rule.VersionList.Count);
            foreach (var v in rule.VersionList)
            {
                byte[] terms = v.Terms.Encode();
                w.Write(v.Number); w.Write(v.EffectiveFromMs); w.Write(v.Ended); w.Write((ushort)terms.Length); w.Write(terms);
            }
        }
        w.Write(_rewardCount);
        for (long id = 1; id <= _rewardCount; id++)
        {
            ref var r = ref _rewards[id - 1];
            w.Write(r.Id); w.Write(r.SourcePaymentId); w.Write(r.RuleId); w.Write(r.RuleVersion); w.Write(r.Account); w.Write(r.UserId);
            w.Write(r.Currency.Code); w.Write((byte)r.Status); w.Write((byte)r.SkipReason); w.Write(r.Amount); w.Write(r.PaidOut);
            w.Write(r.ReversalDue); w.Write(r.Recovered); w.Write(r.IssuedAtMs); w.Write(r.PayoutPaymentId);
        }
    }

    private static void ReadRewards(BinaryReader r, Ledger ledger)
    {
        if (r.ReadUInt32() != RewardsMagic) throw new InvalidDataException("trailing bytes after the ledger state that are not its rewards section");
        int version = r.ReadInt32();
        if (version != RewardsSectionVersion) throw new InvalidDataException($"rewards section version {version} is not known to this RamPay");
        int accounts = r.ReadInt32();
        if (accounts < 0 || accounts > Currency.MaxCode) throw new InvalidDataException($"state holds {accounts} rewards accounts");
        for (int i = 0; i < accounts; i++)
        {
            ushort code = r.ReadUInt16();
            if (!ledger._rewardsAccounts.TryAdd(code, r.ReadInt64())) throw new InvalidDataException("a currency has two rewards accounts");
        }
        int rules = r.ReadInt32();
        if (rules < 0 || rules > MaxRewardRules) throw new InvalidDataException($"state holds {rules} reward rules; the most is {MaxRewardRules}");
        for (int i = 0; i < rules; i++)
        {
            var rule = new RewardRule(r.ReadInt32(), r.ReadInt64());
            if (rule.Id != i + 1) throw new InvalidDataException($"reward rule {i + 1} holds id {rule.Id}");
            int versions = r.ReadInt32();
            if (versions < 1 || versions > 1_000_000) throw new InvalidDataException($"reward rule {rule.Id} has {versions} versions");
            for (int v = 0; v < versions; v++)
            {
                int number = r.ReadInt32();
                long from = r.ReadInt64();
                bool ended = r.ReadBoolean();
                var bytes = new byte[r.ReadUInt16()];
                r.BaseStream.ReadExactly(bytes);
                var terms = RewardRuleTerms.TryDecode(bytes);
                if (number != v + 1 || terms is null || !terms.IsValid) throw new InvalidDataException($"reward rule {rule.Id} version {v + 1} does not decode");
                rule.VersionList.Add(new RewardRuleVersion(number, from, terms, ended));
            }
            ledger._rewardRules.Add(rule);
        }
        long count = r.ReadInt64();
        if (count < 0 || count > ledger.Options.MaxPayments) throw new InvalidDataException($"state holds {count} rewards");
        ledger._rewards = new Reward[Math.Max(1024, count)];
        for (long id = 1; id <= count; id++)
        {
            ref var x = ref ledger._rewards[id - 1];
            x.Id = r.ReadInt64(); x.SourcePaymentId = r.ReadInt64(); x.RuleId = r.ReadInt32(); x.RuleVersion = r.ReadInt32();
            x.Account = r.ReadInt64(); x.UserId = r.ReadInt64(); x.Currency = new Currency(r.ReadUInt16());
            x.Status = (RewardStatus)r.ReadByte(); x.SkipReason = (ResultCode)r.ReadByte(); x.Amount = r.ReadInt64(); x.PaidOut = r.ReadInt64();
            x.ReversalDue = r.ReadInt64(); x.Recovered = r.ReadInt64(); x.IssuedAtMs = r.ReadInt64(); x.PayoutPaymentId = r.ReadInt64();
            if (x.Id != id) throw new InvalidDataException($"reward {id} holds id {x.Id}");
            if (x.SourcePaymentId < 1 || x.SourcePaymentId > ledger._payments.Count) throw new InvalidDataException($"reward {id} names payment {x.SourcePaymentId}, beyond the payments");
            ledger._rewardCount = id;
            ledger.LinkReward(ref x);
            if (x.Status == RewardStatus.Issued)
            {
                var key = (x.RuleId, x.UserId, MonthOf(ledger._payments.ReadAny(x.SourcePaymentId).CreatedAtMs));
                ledger._rewardMonthly[key] = ledger._rewardMonthly.GetValueOrDefault(key) + x.Amount;
            }
        }
    }
}
