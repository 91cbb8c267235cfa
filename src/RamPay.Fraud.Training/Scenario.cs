namespace RamPay.Fraud.Training;

/// <summary>The label of a generated payment: legitimate, or which fraud pattern made it.</summary>
public enum FraudPattern : byte
{
    None = 0,
    /// <summary>A stolen account: a burst of payments to new payees, at night more often than not, that drains the balance.</summary>
    AccountTakeover = 1,
    /// <summary>A fresh account making many tiny payments to many merchants within minutes.</summary>
    CardTesting = 2,
    /// <summary>Many senders paying one new account within hours, then that account cashing out.</summary>
    MuleFanIn = 3,
    /// <summary>A user paying many times their usual amount to a payee new to them (a scam).</summary>
    AmountOutlier = 4,
}

public enum ScenarioEventKind : byte
{
    /// <summary>A wallet opens (From = its account id). Account 1, the funding account, opens first.</summary>
    OpenAccount = 1,
    /// <summary>Money from the funding account (From = 1) into a wallet: a salary or a top-up. Not scored.</summary>
    Deposit = 2,
    /// <summary>A payment between two wallets: what is scored.</summary>
    Payment = 3,
}

/// <summary>One event of a scenario, in time order. Account ids are the ledger's: 1 = funding, then wallets in opening order.</summary>
public readonly record struct ScenarioEvent(long TimeMs, ScenarioEventKind Kind, int From, int To, long Amount, FraudPattern Pattern);

/// <summary>
/// A population over weeks. All rates are per week over the evaluated period; legitimate activity also runs through a
/// warm-up before it, so that features have history when the evaluated period starts. docs/fraud.md describes it.
/// </summary>
public sealed record ScenarioOptions
{
    public const long DayMs = 86_400_000;
    public string Name { get; init; } = "default";
    public ulong Seed { get; init; } = 1;
    public int Users { get; init; } = 3_000;
    /// <summary>Days evaluated: the first <see cref="TrainDays"/> train, the rest are held out.</summary>
    public int Days { get; init; } = 56;
    public int TrainDays { get; init; } = 42;
    /// <summary>Legitimate activity before the first evaluated day (not labelled, not trained on).</summary>
    public int WarmupDays { get; init; } = 14;
    /// <summary>2026-09-07 00:00 UTC, a Monday.</summary>
    public long StartMs { get; init; } = 1_788_739_200_000;
    public double TakeoversPerWeek { get; init; } = 10;
    public double CardTestingPerWeek { get; init; } = 8;
    public double MulesPerWeek { get; init; } = 6;
    public double OutliersPerWeek { get; init; } = 20;

    public long SplitMs => StartMs + TrainDays * DayMs;
    public long EndMs => StartMs + Days * DayMs;

    public static ScenarioOptions Default => new();

    public void Validate()
    {
        if (Users < 50 || Users > 1_000_000) throw new ArgumentException("users must be 50..1,000,000");
        if (Days < 2 || TrainDays < 1 || TrainDays >= Days) throw new ArgumentException("days must be at least 2 and train days within 1..days-1");
        if (WarmupDays < 0) throw new ArgumentException("warm-up days must not be negative");
        if (TakeoversPerWeek < 0 || CardTestingPerWeek < 0 || MulesPerWeek < 0 || OutliersPerWeek < 0) throw new ArgumentException("rates must not be negative");
    }
}

/// <summary>A generated scenario: its events in time order and how many accounts they open.</summary>
public sealed class Scenario(ScenarioOptions options, IReadOnlyList<ScenarioEvent> events, int accounts)
{
    public ScenarioOptions Options { get; } = options;
    public IReadOnlyList<ScenarioEvent> Events { get; } = events;
    /// <summary>Accounts opened, the funding account included (ids 1..Accounts).</summary>
    public int Accounts { get; } = accounts;

    /// <summary>
    /// Simulates the population. Legitimate users have a rate, an amount profile (log-normal), a peak hour, a circle of
    /// regular payees (merchants and friends) paid with Zipf weights, now and then a new payee, a bill split (a burst of
    /// small payments), a large purchase, a salary every two weeks; some open their account during the period. Fraud
    /// incidents are planted at random times of the evaluated period with the patterns of <see cref="FraudPattern"/>.
    /// Amounts are settled against simulated balances in time order: a payment the sender cannot afford is dropped
    /// (the ledger would refuse it before scoring).
    /// </summary>
    public static Scenario Generate(ScenarioOptions options)
    {
        options.Validate();
        return new Generator(options).Run();
    }

    private sealed class Actor
    {
        public int Index;
        public int Id;
        public long CreatedMs;
        public bool Legit;
        public bool Merchant;
        public double Rate;
        public double Mu;
        public double Sigma;
        public double PeakHour;
        public List<Actor> Circle = [];
        public long SalaryOffsetMs;
        /// <summary>The share of the user's everyday payments that are small-ticket purchases (coffee, a ticket): 1.00 to about 10.00.</summary>
        public double SmallTicket;
        /// <summary>Opens during the simulation and uses the account at once (<c>Onboardings</c>): their first money is their own top-up.</summary>
        public bool Onboards;
    }

    private readonly record struct Draft(long TimeMs, ScenarioEventKind Kind, Actor From, Actor To, long Amount, double Fraction, bool CapToBalance, FraudPattern Pattern, long Seq);

    private sealed class Generator(ScenarioOptions o)
    {
        private const long HourMs = 3_600_000, MinuteMs = 60_000, DayMs = ScenarioOptions.DayMs;
        private const long MinAmount = 100;
        private readonly ScenarioRandom _rng = new(o.Seed);
        private readonly List<Actor> _actors = [];
        private readonly List<Actor> _legit = [];
        private readonly List<Actor> _merchants = [];
        private readonly List<Draft> _drafts = [];
        private readonly Actor _funding = new() { Index = -1, Id = 1, CreatedMs = o.StartMs - 400 * DayMs };
        private long _seq;
        private long WarmStart => o.StartMs - o.WarmupDays * DayMs;

        public Scenario Run()
        {
            CreateUsers();
            var incidents = PlanIncidents();
            // Ids in opening order, as a ledger would give them.
            int id = 2;
            foreach (var a in _actors.OrderBy(a => a.CreatedMs).ThenBy(a => a.Index)) a.Id = id++;
            foreach (var u in _legit) BuildCircle(u);
            foreach (var a in _actors) Add(a.CreatedMs, ScenarioEventKind.OpenAccount, a, a, 0);
            foreach (var u in _legit) LegitActivity(u);
            Welcomes();
            Onboardings();
            Collections();
            foreach (var incident in incidents) incident();
            return new Scenario(o, Settle(), _actors.Count + 1);
        }

        private Actor NewActor(long createdMs, bool legit)
        {
            var a = new Actor { Index = _actors.Count, CreatedMs = createdMs, Legit = legit };
            _actors.Add(a);
            return a;
        }

        private void CreateUsers()
        {
            for (int u = 0; u < o.Users; u++)
            {
                long created = _rng.Chance(0.85)
                    ? WarmStart - DayMs - (long)(_rng.NextDouble() * 364 * DayMs)
                    : o.StartMs + (long)(_rng.NextDouble() * o.Days * 0.85 * DayMs);
                var a = NewActor(created, legit: true);
                a.Merchant = _rng.Chance(0.04);
                a.Rate = Math.Clamp(_rng.LogNormal(DetMath.Log(1.5), 0.7), 0.1, 20) * (a.Merchant ? 0.3 : 1);
                a.Mu = DetMath.Log(3_000) + 0.7 * _rng.Normal();
                a.Sigma = _rng.Uniform(0.3, 0.8);
                a.PeakHour = _rng.Chance(0.08) ? _rng.Uniform(0.5, 4) : Math.Clamp(15 + 3.5 * _rng.Normal(), 0, 23.9); // some night owls
                a.SalaryOffsetMs = (long)(_rng.NextDouble() * 14 * DayMs);
                a.SmallTicket = a.Merchant ? 0 : _rng.Uniform(0, 0.4);
                a.Onboards = created >= WarmStart && !a.Merchant && _rng.Chance(0.75);
                _legit.Add(a);
                if (a.Merchant) _merchants.Add(a);
            }
            if (_merchants.Count == 0) { _legit[0].Merchant = true; _merchants.Add(_legit[0]); }
        }

        private void BuildCircle(Actor u)
        {
            int size = 3 + _rng.Next(10);
            for (int i = 0; i < size; i++)
            {
                var payee = _rng.Chance(0.5) ? _merchants[_rng.Next(_merchants.Count)] : _legit[_rng.Next(_legit.Count)];
                if (payee != u && !u.Circle.Contains(payee)) u.Circle.Add(payee);
            }
        }

        private void Add(long t, ScenarioEventKind kind, Actor from, Actor to, long amount, double fraction = 0, bool cap = false, FraudPattern pattern = FraudPattern.None) =>
            _drafts.Add(new Draft(t, kind, from, to, amount, fraction, cap, pattern, _seq++));

        private double TypicalAmount(Actor u) => DetMath.Exp(u.Mu + u.Sigma * u.Sigma / 2);

        private long LegitAmount(Actor u, double shift = 0, double? sigma = null) =>
            Math.Max(MinAmount, (long)Math.Round(DetMath.Exp(u.Mu + shift + (sigma ?? u.Sigma) * _rng.Normal())));

        /// <summary>A small-ticket purchase: log-normal around 3.50, at least 1.00.</summary>
        private long SmallTicketAmount() => Math.Max(MinAmount, (long)Math.Round(DetMath.Exp(DetMath.Log(350) + 0.5 * _rng.Normal())));

        /// <summary>A merchant from the user's circle (the corner shop they go to) or, one time in four or when they have none, any merchant.</summary>
        private Actor PickMerchant(Actor u)
        {
            if (!_rng.Chance(0.25))
            {
                int start = _rng.Next(Math.Max(1, u.Circle.Count));
                for (int i = 0; i < u.Circle.Count; i++)
                    if (u.Circle[(start + i) % u.Circle.Count] is { Merchant: true } m) return m;
            }
            return _merchants[_rng.Next(_merchants.Count)];
        }

        /// <summary>A regular payee (Zipf over the circle) or, now and then, someone new; null when none has opened yet.</summary>
        private Actor? PickPayee(Actor u, long t, double newPayee)
        {
            if (u.Circle.Count > 0 && !_rng.Chance(newPayee))
            {
                double total = 0;
                for (int i = 0; i < u.Circle.Count; i++) total += 1.0 / (i + 1);
                double pick = _rng.NextDouble() * total;
                for (int i = 0; i < u.Circle.Count; i++)
                {
                    pick -= 1.0 / (i + 1);
                    if (pick <= 0) return u.Circle[i].CreatedMs < t ? u.Circle[i] : null;
                }
                return u.Circle[^1].CreatedMs < t ? u.Circle[^1] : null;
            }
            var fresh = _rng.Chance(0.3) ? _merchants[_rng.Next(_merchants.Count)] : _legit[_rng.Next(_legit.Count)];
            if (fresh == u || fresh.CreatedMs >= t) return null;
            if (_rng.Chance(0.4) && !u.Circle.Contains(fresh))
            {
                if (u.Circle.Count >= 14) u.Circle.RemoveAt(_rng.Next(u.Circle.Count));
                u.Circle.Add(fresh);
            }
            return fresh;
        }

        private long TimeInDay(long dayStart, Actor u)
        {
            double hour = u.PeakHour + 3 * _rng.Normal();
            hour -= 24 * Math.Floor(hour / 24);
            return dayStart + (long)(hour * HourMs);
        }

        private void LegitActivity(Actor u)
        {
            long first = Math.Max(u.CreatedMs + 10 * MinuteMs, WarmStart);
            double weeklySpend = 7 * u.Rate * TypicalAmount(u);
            // Opening balance (a user who onboards brings their own top-up instead), then a salary every two weeks.
            if (!u.Onboards) Add(Math.Max(u.CreatedMs + MinuteMs, WarmStart - DayMs), ScenarioEventKind.Deposit, _funding, u, (long)(weeklySpend * _rng.Uniform(2, 4)) + 10_000);
            for (long t = WarmStart + u.SalaryOffsetMs; t < o.EndMs; t += 14 * DayMs)
                if (t > u.CreatedMs) Add(t, ScenarioEventKind.Deposit, _funding, u, (long)(2 * weeklySpend * _rng.Uniform(1.1, 1.8)) + 5_000);

            for (long day = WarmStart; day < o.EndMs; day += DayMs)
            {
                bool weekend = ((day - o.StartMs) / DayMs % 7 + 7) % 7 >= 5;
                int n = _rng.Poisson(u.Rate * (weekend ? 1.25 : 1));
                for (int i = 0; i < n; i++)
                {
                    long t = TimeInDay(day, u);
                    if (t < first || t >= o.EndMs) continue;
                    if (_rng.Chance(0.004))
                    {
                        // A large purchase: rent, a bike, a holiday; mostly from a merchant.
                        var shop = _rng.Chance(0.6) ? _merchants[_rng.Next(_merchants.Count)] : PickPayee(u, t, 0);
                        if (shop is not null && shop != u && shop.CreatedMs < t)
                            Add(t, ScenarioEventKind.Payment, u, shop, (long)(TypicalAmount(u) * _rng.Uniform(8, 30)));
                        continue;
                    }
                    if (_rng.Chance(u.SmallTicket))
                    {
                        var shop = PickMerchant(u);
                        if (shop != u && shop.CreatedMs < t) Add(t, ScenarioEventKind.Payment, u, shop, SmallTicketAmount());
                        continue;
                    }
                    var payee = PickPayee(u, t, 0.07);
                    if (payee is null) continue;
                    Add(t, ScenarioEventKind.Payment, u, payee, LegitAmount(u));
                    // Now and then a second payment to the same payee within a minute or two: a tip, the rest of a bill.
                    if (_rng.Chance(0.03)) Add(t + (long)(_rng.Uniform(2, 120) * 1000), ScenarioEventKind.Payment, u, payee, LegitAmount(u, shift: -1), cap: true);
                }
                if (_rng.Chance(0.003))
                {
                    // A shopping spree: several merchants within half an hour, half of them new to the user.
                    long t = TimeInDay(day, u);
                    int k = 4 + _rng.Next(7);
                    for (int j = 0; j < k; j++)
                    {
                        long tj = t + (long)(_rng.Uniform(0, 30) * MinuteMs);
                        if (tj < first || tj >= o.EndMs) continue;
                        var shop = _rng.Chance(0.5) ? _merchants[_rng.Next(_merchants.Count)] : PickPayee(u, tj, 0);
                        if (shop is not null && shop != u && shop.CreatedMs < tj) Add(tj, ScenarioEventKind.Payment, u, shop, LegitAmount(u, shift: -1, sigma: 0.6));
                    }
                }
                if (_rng.Chance(0.002) && u.Circle.Count > 0)
                {
                    // Moving savings: most of the balance to someone the user pays regularly (a partner, a landlord).
                    long t = TimeInDay(day, u);
                    var to = u.Circle[_rng.Next(Math.Min(3, u.Circle.Count))];
                    if (t >= first && t < o.EndMs && to.CreatedMs < t) Add(t, ScenarioEventKind.Payment, u, to, 0, _rng.Uniform(0.6, 0.95));
                }
                if (_rng.Chance(0.008))
                {
                    // Splitting a bill: a few small payments within minutes, some to people not paid before.
                    long t = TimeInDay(day, u);
                    int k = 3 + _rng.Next(4);
                    long span = (long)(_rng.Uniform(2, 15) * MinuteMs);
                    for (int j = 0; j < k; j++)
                    {
                        long tj = t + (long)(span * _rng.NextDouble());
                        if (tj < first || tj >= o.EndMs) continue;
                        var payee = PickPayee(u, tj, 0.3);
                        if (payee is not null) Add(tj, ScenarioEventKind.Payment, u, payee, LegitAmount(u, shift: -0.5, sigma: 0.3));
                    }
                }
            }
        }

        /// <summary>A user who opens an account during the period is paid by a few friends within two days (fan-in to a new account).</summary>
        private void Welcomes()
        {
            foreach (var u in _legit)
            {
                if (u.CreatedMs < o.StartMs - o.WarmupDays * DayMs) continue;
                int friends = _rng.Poisson(2.5);
                for (int i = 0; i < friends; i++)
                {
                    long t = u.CreatedMs + (long)(_rng.Uniform(0.2, 48) * HourMs);
                    var friend = RandomLegit(t);
                    if (friend is null || friend == u || t >= o.EndMs) continue;
                    Add(t, ScenarioEventKind.Payment, friend, u, LegitAmount(friend, shift: 0.3));
                    if (!friend.Circle.Contains(u) && friend.Circle.Count < 14) friend.Circle.Add(u);
                }
            }
        }

        /// <summary>
        /// Most users who open an account during the simulation use it at once: a top-up within minutes, then one to
        /// three payments within the hour to whoever asked them to join (often an account opened days before), a
        /// merchant or a friend, often a second one to the same payee seconds later; a third of first payments spend
        /// the whole top-up, and half of the other payments are small purchases. This is what a wallet's new users do,
        /// and it is what keeps a model from treating every new account's first payment as card testing or a cash-out.
        /// </summary>
        private void Onboardings()
        {
            var recent = _legit.Where(u => u.CreatedMs >= WarmStart).OrderBy(u => u.CreatedMs).ToList();
            for (int n = 0; n < recent.Count; n++)
            {
                var u = recent[n];
                if (!u.Onboards) continue;
                long at = u.CreatedMs + (long)(_rng.Uniform(0.1, 10) * MinuteMs);
                if (at >= o.EndMs) continue;
                long typical = LegitAmount(u);
                bool exact = _rng.Chance(0.33);
                Add(at, ScenarioEventKind.Deposit, _funding, u, exact ? typical : typical + _rng.UniformLong(1_000, 20_000));
                // Their first salary or a larger top-up follows within days.
                Add(at + (long)(_rng.Uniform(0.5, 4) * DayMs), ScenarioEventKind.Deposit, _funding, u, (long)(7 * u.Rate * TypicalAmount(u) * _rng.Uniform(1.5, 3)) + 5_000);
                int payments = 1 + (_rng.Chance(0.4) ? 1 + _rng.Next(2) : 0);
                Actor? previous = null;
                for (int i = 0; i < payments; i++)
                {
                    // Half the time a further payment follows at once, to the same payee (the rest of a bill, a tip).
                    bool again = previous is not null && _rng.Chance(0.5);
                    at += again ? (long)(_rng.Uniform(2, 90) * 1000) : (long)(_rng.Uniform(i == 0 ? 0.05 : 1, 30) * MinuteMs);
                    if (at >= o.EndMs) break;
                    Actor? payee = again ? previous : _rng.Next(3) switch
                    {
                        0 => n > 0 && recent[n - 1 - _rng.Next(Math.Min(n, 20))] is { } inviter && inviter.CreatedMs < at && !inviter.Merchant ? inviter : RandomLegit(at),
                        1 => PickMerchant(u),
                        _ => RandomLegit(at),
                    };
                    if (payee is null || payee == u || payee.CreatedMs >= at) continue;
                    previous = payee;
                    if (!payee.Merchant && !u.Circle.Contains(payee) && u.Circle.Count < 14) u.Circle.Add(payee);
                    if (i == 0 && exact) Add(at, ScenarioEventKind.Payment, u, payee, 0, 1.0);
                    else Add(at, ScenarioEventKind.Payment, u, payee, _rng.Chance(0.5) ? SmallTicketAmount() : LegitAmount(u, shift: -0.3), cap: true);
                }
            }
        }

        /// <summary>Someone collects for a gift or a trip: five to twenty people pay them within hours, most for the first time.</summary>
        private void Collections()
        {
            for (long day = WarmStart; day < o.EndMs; day += DayMs)
            {
                for (int c = _rng.Poisson(o.Users / 800.0); c > 0; c--)
                {
                    long t = day + (long)(_rng.Uniform(8, 20) * HourMs);
                    var organizer = RandomLegit(t, merchantsToo: false);
                    if (organizer is null) continue;
                    long window = (long)(_rng.Uniform(1, 8) * HourMs);
                    double shift = _rng.Uniform(-0.5, 1);
                    for (int k = 5 + _rng.Next(16); k > 0; k--)
                    {
                        long at = t + (long)(window * _rng.NextDouble());
                        var payer = k % 3 == 0 && organizer.Circle.Count > 0 ? organizer.Circle[_rng.Next(organizer.Circle.Count)] : RandomLegit(at);
                        if (payer is null || payer == organizer || payer.Merchant || payer.CreatedMs >= at || at >= o.EndMs) continue;
                        Add(at, ScenarioEventKind.Payment, payer, organizer, LegitAmount(payer, shift, 0.2));
                    }
                }
            }
        }

        private long IncidentTime() => o.StartMs + HourMs + (long)(_rng.NextDouble() * (o.Days * DayMs - 13 * HourMs));

        private Actor? RandomLegit(long openedBefore, bool merchantsToo = false)
        {
            for (int attempt = 0; attempt < 50; attempt++)
            {
                var u = _legit[_rng.Next(_legit.Count)];
                if (u.CreatedMs < openedBefore && (merchantsToo || !u.Merchant)) return u;
            }
            return null;
        }

        private List<Action> PlanIncidents()
        {
            var plans = new List<Action>();
            double weeks = o.Days / 7.0;
            for (int i = _rng.Poisson(o.TakeoversPerWeek * weeks); i > 0; i--) plans.Add(PlanTakeover());
            for (int i = _rng.Poisson(o.CardTestingPerWeek * weeks); i > 0; i--) plans.Add(PlanCardTesting());
            for (int i = _rng.Poisson(o.MulesPerWeek * weeks); i > 0; i--) plans.Add(PlanMule());
            for (int i = _rng.Poisson(o.OutliersPerWeek * weeks); i > 0; i--) plans.Add(PlanOutlier());
            return plans;
        }

        private Action PlanTakeover()
        {
            long t = IncidentTime();
            if (_rng.Chance(0.55)) t = t - t % DayMs + (long)(_rng.NextDouble() * 6 * HourMs); // most take-overs run at night
            if (t < o.StartMs) t += DayMs;
            var drops = new List<Actor>();
            for (int d = 1 + _rng.Next(3); d > 0; d--) drops.Add(NewActor(t - (long)(_rng.Uniform(0.1, 120) * HourMs), legit: false));
            bool compromisedPayee = _rng.Chance(0.3);
            return () =>
            {
                var victim = RandomLegit(t - 30 * DayMs);
                if (victim is null) return;
                if (compromisedPayee && RandomLegit(t, merchantsToo: true) is { } extra && extra != victim && !victim.Circle.Contains(extra)) drops.Add(extra);
                int n = 2 + _rng.Next(7);
                double maxGapS = _rng.Chance(0.3) ? 1_800 : 240; // some take their time
                long at = t;
                for (int i = 0; i < n; i++)
                {
                    at += (long)(_rng.Uniform(20, maxGapS) * 1000);
                    double fraction = i == 0 ? _rng.Uniform(0.2, 0.8) : _rng.Uniform(0.4, 0.95);
                    Add(at, ScenarioEventKind.Payment, victim, drops[i % drops.Count], 0, fraction, pattern: FraudPattern.AccountTakeover);
                }
            };
        }

        private Action PlanCardTesting()
        {
            long t = IncidentTime();
            // Most testers open an account for it; some use an aged one.
            var tester = NewActor(t - (long)(_rng.Chance(0.3) ? _rng.Uniform(10, 200) * DayMs : _rng.Uniform(2, 48) * HourMs), legit: false);
            bool slow = _rng.Chance(0.3);
            return () =>
            {
                Add(tester.CreatedMs + (long)(_rng.Uniform(1, 60) * MinuteMs), ScenarioEventKind.Deposit, _funding, tester, _rng.UniformLong(20_000, 60_000));
                int n = (slow ? 8 : 15) + _rng.Next(36);
                long span = (long)(slow ? _rng.Uniform(60, 360) * MinuteMs : _rng.Uniform(3, 25) * MinuteMs);
                long maxAmount = _rng.Chance(0.5) ? 600 : 1_500;
                for (int i = 0; i < n; i++)
                {
                    long at = t + (long)(span * _rng.NextDouble());
                    var shop = _merchants[_rng.Next(_merchants.Count)];
                    if (shop.CreatedMs >= at) continue;
                    Add(at, ScenarioEventKind.Payment, tester, shop, _rng.UniformLong(50, maxAmount), pattern: FraudPattern.CardTesting);
                }
            };
        }

        private Action PlanMule()
        {
            long t = IncidentTime();
            // Most mules are fresh accounts; some are recruited account holders of long standing.
            var mule = NewActor(t - (long)(_rng.Chance(0.35) ? _rng.Uniform(30, 300) * DayMs : _rng.Uniform(1, 72) * HourMs), legit: false);
            var cashOut = NewActor(t - (long)(_rng.Uniform(1, 72) * HourMs), legit: false);
            return () =>
            {
                int senders = 6 + _rng.Next(20);
                long window = (long)(_rng.Uniform(1, 24) * HourMs);
                var used = new HashSet<Actor>();
                for (int i = 0; i < senders; i++)
                {
                    var sender = RandomLegit(t);
                    if (sender is null || !used.Add(sender)) continue;
                    long at = t + (long)(window * _rng.NextDouble());
                    Add(at, ScenarioEventKind.Payment, sender, mule, (long)(TypicalAmount(sender) * _rng.Uniform(1.5, 5)), cap: true, pattern: FraudPattern.MuleFanIn);
                }
                long out1 = t + window + (long)(_rng.Uniform(10, 120) * MinuteMs);
                Add(out1, ScenarioEventKind.Payment, mule, cashOut, 0, _rng.Uniform(0.7, 0.95), pattern: FraudPattern.MuleFanIn);
                if (_rng.Chance(0.5)) Add(out1 + (long)(_rng.Uniform(5, 60) * MinuteMs), ScenarioEventKind.Payment, mule, cashOut, 0, 0.9, pattern: FraudPattern.MuleFanIn);
            };
        }

        private Action PlanOutlier()
        {
            long t = IncidentTime();
            var scam = _rng.Chance(0.5) ? NewActor(t - (long)(_rng.Uniform(1, 240) * HourMs), legit: false) : null;
            return () =>
            {
                var victim = RandomLegit(t - 14 * DayMs);
                if (victim is null) return;
                var payee = scam ?? RandomLegit(t, merchantsToo: true);
                if (payee is null || payee == victim || victim.Circle.Contains(payee)) return;
                Add(t, ScenarioEventKind.Payment, victim, payee, (long)(TypicalAmount(victim) * _rng.Uniform(6, 40)), cap: true, pattern: FraudPattern.AmountOutlier);
            };
        }

        /// <summary>Orders the drafts in time and settles amounts against balances; returns the events.</summary>
        private List<ScenarioEvent> Settle()
        {
            _drafts.Sort((a, b) =>
            {
                int c = a.TimeMs.CompareTo(b.TimeMs);
                if (c != 0) return c;
                c = ((byte)a.Kind).CompareTo((byte)b.Kind); // opens, then deposits, then payments at the same millisecond
                if (c != 0) return c;
                return a.Kind == ScenarioEventKind.OpenAccount ? a.From.Id.CompareTo(b.From.Id) : a.Seq.CompareTo(b.Seq);
            });
            var balance = new long[_actors.Count + 2];
            var events = new List<ScenarioEvent>(_drafts.Count + 1)
            {
                new(_funding.CreatedMs, ScenarioEventKind.OpenAccount, 1, 0, 0, FraudPattern.None),
            };
            foreach (var d in _drafts)
            {
                switch (d.Kind)
                {
                    case ScenarioEventKind.OpenAccount:
                        events.Add(new ScenarioEvent(d.TimeMs, d.Kind, d.From.Id, 0, 0, FraudPattern.None));
                        break;
                    case ScenarioEventKind.Deposit:
                        balance[d.To.Id] += d.Amount;
                        events.Add(new ScenarioEvent(d.TimeMs, d.Kind, 1, d.To.Id, d.Amount, FraudPattern.None));
                        break;
                    default:
                        long available = balance[d.From.Id];
                        long amount = d.Fraction > 0 ? (long)(available * d.Fraction)
                            : d.CapToBalance ? Math.Min(d.Amount, (long)(available * 0.95))
                            : d.Amount;
                        if (amount < MinAmount && d.Pattern != FraudPattern.CardTesting) continue;
                        if (amount <= 0 || amount > available || d.From == d.To) continue;
                        balance[d.From.Id] -= amount;
                        balance[d.To.Id] += amount;
                        events.Add(new ScenarioEvent(d.TimeMs, d.Kind, d.From.Id, d.To.Id, amount, d.Pattern));
                        break;
                }
            }
            return events;
        }
    }
}
