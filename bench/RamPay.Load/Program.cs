using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using RamPay.Client;
using RamPay.Contracts;
using RamPay.Load;
using Command = System.CommandLine.Command;

ParseResult parsed = LoadCli.Build(Console.Out, Console.Error).Parse(args);
int exitCode = parsed.Invoke();
// Bad usage is "could not run" (2), not a failed self-check (1), which is System.CommandLine's own code for it.
return parsed.Errors.Count > 0 ? LoadCli.ExitError : exitCode;

namespace RamPay.Load
{
    /// <summary>
    /// <c>rampay-load tcp|http|setup</c>. Exit codes: 0 the run passed its self-check, 1 it failed it, 2 the run
    /// could not be made (bad options, server unreachable, setup refused).
    /// </summary>
    internal static class LoadCli
    {
        public const int ExitPass = 0;
        public const int ExitFail = 1;
        public const int ExitError = 2;

        public static RootCommand Build(TextWriter output, TextWriter error)
        {
            var http = new Option<Uri>("--http")
            {
                Description = "The server's HTTP address (sign-up, deposits and the self-check use it in every mode)",
                DefaultValueFactory = _ => new Uri("http://127.0.0.1:8080"),
                CustomParser = r =>
                {
                    string text = r.Tokens.Single().Value;
                    if (Uri.TryCreate(text, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https") return uri;
                    r.AddError($"--http '{text}' is not an http:// or https:// address");
                    return null;
                },
            };
            var tcp = new Option<string>("--tcp") { Description = "The server's TCP address, host:port", DefaultValueFactory = _ => "127.0.0.1:7070" };
            tcp.Validators.Add(r =>
            {
                string text = r.GetValueOrDefault<string>();
                if (!TryParseHostPort(text, out _)) r.AddError($"--tcp '{text}' is not host:port");
            });
            var connections = new Option<int>("--connections", "-c") { Description = "Connections to the server, each one user's", DefaultValueFactory = _ => 4 };
            var rate = new Option<double>("--rate") { Description = "Target payments per second over all connections; 0 = as fast as the server answers", DefaultValueFactory = _ => 0 };
            var batch = new Option<int>("--batch") { Description = "Payments per CommandBatch frame", DefaultValueFactory = _ => 100 };
            var pipeline = new Option<int>("--pipeline") { Description = "Frames in flight per connection", DefaultValueFactory = _ => 8 };
            var duration = new Option<double>("--duration", "-d") { Description = "Seconds to measure, after the warm-up", DefaultValueFactory = _ => 10 };
            var count = new Option<long>("--count", "-n") { Description = "Payments to send after the warm-up, instead of --duration", DefaultValueFactory = _ => 0 };
            var users = new Option<int>("--users", "-u") { Description = "Wallets (users) to pay between, at least --connections; default one per connection" };
            var currency = new Option<string>("--currency") { Description = "Currency of the wallets and payments", DefaultValueFactory = _ => "USD" };
            var seed = new Option<int>("--seed") { Description = "Seed for payees and amounts", DefaultValueFactory = _ => 1 };
            var warmup = new Option<double>("--warmup") { Description = "Seconds of load before measuring starts (checked, not measured)", DefaultValueFactory = _ => 1 };
            var json = new Option<string?>("--json") { Description = "Also write the summary as JSON to this file" };
            var deposit = new Option<long>("--deposit") { Description = "Minor units deposited into each wallet before the run (in several deposits if the server's limit is lower)", DefaultValueFactory = _ => 10_000_000 };
            var maxAmount = new Option<int>("--max-amount") { Description = "Payments are 1..this many minor units", DefaultValueFactory = _ => 100 };
            var sample = new Option<int>("--sample") { Description = "Acknowledged payments fetched one by one in the self-check", DefaultValueFactory = _ => 1_000 };
            var runId = new Option<string?>("--run-id") { Description = "Makes emails and idempotency keys unique; default: time and a random suffix" };

            LoadOptions Read(ParseResult r, LoadMode mode)
            {
                // Each subcommand has some of the options: the others keep LoadOptions' defaults.
                var d = new LoadOptions { Mode = mode };
                T Get<T>(Option<T> option, T fallback) => r.CommandResult.Command.Options.Contains(option) ? r.GetValue(option)! : fallback;
                (string Host, int Port) address = (d.TcpHost, d.TcpPort);
                if (r.CommandResult.Command.Options.Contains(tcp)) TryParseHostPort(r.GetValue(tcp)!, out address); // validated by the option
                return d with
                {
                    HttpAddress = Get(http, d.HttpAddress), TcpHost = address.Host, TcpPort = address.Port,
                    Connections = Get(connections, d.Connections), Rate = Get(rate, d.Rate), Batch = Get(batch, d.Batch), Pipeline = Get(pipeline, d.Pipeline),
                    DurationSeconds = Get(duration, d.DurationSeconds), Count = Get(count, d.Count), Users = Get(users, d.Users), Currency = Get(currency, d.Currency),
                    Seed = Get(seed, d.Seed), WarmupSeconds = Get(warmup, d.WarmupSeconds), JsonPath = Get(json, d.JsonPath), DepositPerWallet = Get(deposit, d.DepositPerWallet),
                    MaxAmount = Get(maxAmount, d.MaxAmount), Sample = Get(sample, d.Sample), RunId = Get(runId, null) ?? d.RunId,
                };
            }

            Option[] common = [http, connections, rate, duration, count, users, currency, seed, warmup, json, deposit, maxAmount, sample, runId];

            var tcpCommand = new Command("tcp", "Pay over the binary TCP protocol: batches of transfers, pipelined, one user per connection; then check the ledger against what was acknowledged.");
            foreach (Option o in common.Append(tcp).Append(batch).Append(pipeline)) tcpCommand.Options.Add(o);
            tcpCommand.SetAction((r, ct) => RunAsync(Read(r, LoadMode.Tcp), output, error, ct));

            var httpCommand = new Command("http", "Pay over the HTTP API: one POST /v1/payments per request, one request at a time per connection; then check the ledger against what was acknowledged.");
            foreach (Option o in common) httpCommand.Options.Add(o);
            httpCommand.SetAction((r, ct) => RunAsync(Read(r, LoadMode.Http), output, error, ct));

            var setupCommand = new Command("setup", "Only register the wallets and deposit into them, then print shell exports for wallet 0 paying wallet 1 (RAMPAY_TOKEN, RAMPAY_FROM, RAMPAY_TO, RAMPAY_CURRENCY, RAMPAY_RUN): what bench/wrk/payments.lua reads.");
            foreach (Option o in new Option[] { http, users, currency, deposit, runId }) setupCommand.Options.Add(o);
            setupCommand.SetAction((r, ct) => SetupOnlyAsync(Read(r, LoadMode.Http) is var o ? o with { Users = Math.Max(2, o.Users), Connections = 1 } : null!, output, error, ct));

            var postgres = new Option<string>("--postgres") { Description = "Npgsql connection string of the database to use", Required = true };
            var wallets = new Option<int>("--wallets") { Description = "Accounts the payments go between", DefaultValueFactory = _ => 10_000 };
            var pgConnections = new Option<int>("--connections", "-c") { Description = "Database connections paying at once", DefaultValueFactory = _ => 16 };
            var conventionalCommand = new Command("pg-conventional", "The baseline design, without RamPay: each payment one PostgreSQL transaction that locks both account rows, updates them and inserts the payment and its two entries (schema 'conventional', recreated). Prints payments and entries per second.")
            {
                postgres, wallets, pgConnections, duration, warmup, seed,
            };
            conventionalCommand.SetAction(async (r, ct) =>
            {
                await PgConventional.RunAsync(new PgConventional.Options(r.GetValue(postgres)!, r.GetValue(pgConnections), Math.Max(2, r.GetValue(wallets)),
                    r.GetValue(duration), r.GetValue(warmup), r.GetValue(seed)), output, ct);
                return ExitPass;
            });

            var kafkaCommand = KafkaSinkCommand(output, error);
            var eventLogCommand = EventLogCommand(output, error);

            return new RootCommand("rampay-load: a load generator for a RamPay server, with a self-check of the ledger afterwards") { tcpCommand, httpCommand, setupCommand, conventionalCommand, kafkaCommand, eventLogCommand };
        }

        /// <summary><c>rampay-load event-log</c>: the embedded event log's writer CPU per event, without a server (EventLogBench.cs).</summary>
        private static Command EventLogCommand(TextWriter output, TextWriter error)
        {
            var d = new EventLogBenchOptions();
            var payments = new Option<long>("--payments", "-n") { Description = "Transfers to journal (two events each)", DefaultValueFactory = _ => d.Payments };
            var batch = new Option<int>("--batch") { Description = "Changes per EventLog.Append (the sinks' follower's batch)", DefaultValueFactory = _ => d.BatchChanges };
            var wallets = new Option<int>("--wallets") { Description = "Wallets the transfers go between", DefaultValueFactory = _ => d.Wallets };
            var seed = new Option<int>("--seed") { Description = "Seed for the transfers' wallets and amounts", DefaultValueFactory = _ => d.Seed };
            var command = new Command("event-log", "Measure the embedded event log's writer alone: journal a payment workload with a real engine in a temporary folder, turn it into changes with the sinks' follower, append them to a fresh event log in batches, and print the writer thread's CPU per event.");
            foreach (Option o in new Option[] { payments, batch, wallets, seed }) command.Options.Add(o);
            command.SetAction(r => EventLogBench.Run(new EventLogBenchOptions
            {
                Payments = r.GetValue(payments), BatchChanges = r.GetValue(batch), Wallets = r.GetValue(wallets), Seed = r.GetValue(seed),
            }, output, error));
            return command;
        }

        /// <summary><c>rampay-load kafka-sink</c>: the Kafka events sink's throughput, without a server (KafkaSinkBench.cs).</summary>
        private static Command KafkaSinkCommand(TextWriter output, TextWriter error)
        {
            var d = new KafkaSinkBenchOptions { BootstrapServers = "" };
            var bootstrap = new Option<string>("--bootstrap", "-b") { Description = "Kafka bootstrap servers, host:port[,host:port]; default $RAMPAY_TEST_KAFKA", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("RAMPAY_TEST_KAFKA") ?? "" };
            var topic = new Option<string>("--topic") { Description = "Topic to publish to; default a new one per run, rampay.bench.<run>", DefaultValueFactory = _ => d.Topic };
            var partitions = new Option<int>("--partitions") { Description = "Partitions of the topic when the run creates it", DefaultValueFactory = _ => d.Partitions };
            var events = new Option<long>("--events", "-n") { Description = "Events to publish (registrations, deposits, then transfers: two events each)", DefaultValueFactory = _ => d.Events };
            var batch = new Option<int>("--batch") { Description = "Changes per sink Write (the hub's BatchChanges)", DefaultValueFactory = _ => d.BatchChanges };
            var wallets = new Option<int>("--wallets") { Description = "Wallets (event keys) the transfers go between", DefaultValueFactory = _ => d.Wallets };
            var linger = new Option<double>("--linger-ms") { Description = "The producer's linger.ms", DefaultValueFactory = _ => d.LingerMs };
            var compression = new Option<string>("--compression") { Description = "The producer's compression.codec: none, gzip, snappy, lz4, zstd", DefaultValueFactory = _ => d.Compression };
            var seed = new Option<int>("--seed") { Description = "Seed for the transfers' wallets and amounts", DefaultValueFactory = _ => d.Seed };
            var command = new Command("kafka-sink", "Measure the Kafka events sink alone: journal a payment workload with a real engine in a temporary folder, turn it into changes with the sinks' follower, publish them through KafkaEventSink.Write in batches, and print events/s (time inside Write only) after checking the topic holds every event.");
            foreach (Option o in new Option[] { bootstrap, topic, partitions, events, batch, wallets, linger, compression, seed }) command.Options.Add(o);
            command.SetAction(r => KafkaSinkBench.Run(new KafkaSinkBenchOptions
            {
                BootstrapServers = r.GetValue(bootstrap)!, Topic = r.GetValue(topic)!, Partitions = r.GetValue(partitions), Events = r.GetValue(events),
                BatchChanges = r.GetValue(batch), Wallets = r.GetValue(wallets), LingerMs = r.GetValue(linger), Compression = r.GetValue(compression)!, Seed = r.GetValue(seed),
            }, output, error));
            return command;
        }

        private static bool TryParseHostPort(string text, out (string Host, int Port) address)
        {
            address = default;
            int colon = text.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
                return false;
            address = (text[..colon].Trim('[', ']'), port);
            return true;
        }

        private static async Task<int> RunAsync(LoadOptions o, TextWriter output, TextWriter error, CancellationToken ct)
        {
            if (Invalid(o, error)) return ExitError;
            using HttpClient http = SetupHttpClient();
            var setup = new WalletSetup(http, o);
            Wallet[] wallets;
            try
            {
                output.WriteLine(
                    FormattableString.Invariant($"rampay-load {o.Mode.ToString().ToLowerInvariant()}: {o.Connections} connections, {o.Wallets} wallets, ") +
                    (o.Mode == LoadMode.Tcp ? FormattableString.Invariant($"batch {o.Batch}, pipeline {o.Pipeline}, ") : "") +
                    (o.Rate > 0 ? FormattableString.Invariant($"rate {o.Rate:N0}/s, ") : "rate max, ") +
                    (o.Count > 0 ? FormattableString.Invariant($"{o.Count:N0} payments") : FormattableString.Invariant($"{o.DurationSeconds:0.#} s")) +
                    FormattableString.Invariant($" after {o.WarmupSeconds:0.#} s warm-up, seed {o.Seed}, run {o.RunId}"));
                wallets = await SetUpAsync(setup, o, output, ct);
            }
            catch (Exception e) when (e is RamPayApiException or HttpRequestException or LoadException)
            {
                error.WriteLine("error: setup failed: " + e.Message);
                return ExitError;
            }

            var run = new RunControl(o);
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                // First Ctrl+C: stop sending, then report and check what was done. A second one kills.
                if (run.StopRequested) return;
                e.Cancel = true;
                run.RequestStop();
            };
            Console.CancelKeyPress += onCancel;
            SenderStats[] stats;
            long measuredEnd;
            try
            {
                Task load;
                if (o.Mode == LoadMode.Tcp)
                {
                    var driver = new TcpLoad(o, wallets, run);
                    stats = driver.Stats;
                    load = driver.RunAsync(ct);
                }
                else
                {
                    var driver = new HttpLoad(o, wallets, run);
                    stats = driver.Stats;
                    load = driver.RunAsync(ct);
                }
                using var stopProgress = new CancellationTokenSource();
                Task progress = new ProgressLine(stats, run, output).RunAsync(stopProgress.Token);
                try
                {
                    await load;
                }
                finally
                {
                    measuredEnd = Stopwatch.GetTimestamp();
                    await stopProgress.CancelAsync();
                    await progress;
                }
            }
            catch (Exception e) when (e is LoadException or RamPayProtocolException or System.Net.Sockets.SocketException)
            {
                error.WriteLine("error: the load could not run: " + e.Message);
                return ExitError;
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }

            var acked = new List<AckedPayment>(stats.Sum(s => s.Acked.Count));
            foreach (SenderStats s in stats) acked.AddRange(s.Acked);
            SelfCheck.Result result = await SelfCheck.RunAsync(setup, wallets, acked, stats.Sum(s => s.Unknown), o, ct);
            var check = new SelfCheckSummary(result.Passed, result.WalletsChecked, result.SampleChecked, result.ExpectedTotal, result.ServerTotal, result.Problems);
            LoadSummary summary = Report.Summarize(o, stats, run, measuredEnd, check);
            Report.Print(summary, output);
            if (o.JsonPath is { } path)
            {
                Report.WriteJson(summary, path);
                output.WriteLine("summary written to " + path);
            }
            return result.Passed ? ExitPass : ExitFail;
        }

        private static async Task<int> SetupOnlyAsync(LoadOptions o, TextWriter output, TextWriter error, CancellationToken ct)
        {
            if (Invalid(o, error)) return ExitError;
            using HttpClient http = SetupHttpClient();
            var setup = new WalletSetup(http, o);
            try
            {
                Wallet[] wallets = await SetUpAsync(setup, o, error, ct);
                // Shell exports on stdout (the log went to stderr): JWTs and ids need no quoting.
                output.WriteLine($"export RAMPAY_TOKEN={wallets[0].Token}");
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"export RAMPAY_FROM={wallets[0].AccountId}"));
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"export RAMPAY_TO={wallets[1].AccountId}"));
                output.WriteLine($"export RAMPAY_CURRENCY={o.Currency}");
                output.WriteLine($"export RAMPAY_RUN={o.RunId}");
                return ExitPass;
            }
            catch (Exception e) when (e is RamPayApiException or HttpRequestException or LoadException)
            {
                error.WriteLine("error: setup failed: " + e.Message);
                return ExitError;
            }
        }

        private static async Task<Wallet[]> SetUpAsync(WalletSetup setup, LoadOptions o, TextWriter log, CancellationToken ct)
        {
            using (RamPayHttpClient probe = setup.ClientFor(null))
            {
                HealthStatus health = await probe.GetReadyAsync(ct);
                // "degraded" serves payments (idempotency keys were forgotten before their window, counted and said by
                // /health/ready): a load run goes on and says so; anything else is not serving.
                if (health.Status == "degraded") log.WriteLine($"warning: the server at {o.HttpAddress} is degraded; the run goes on");
                else if (!health.IsReady) throw new LoadException($"the server at {o.HttpAddress} is not ready ({health.Status})");
            }
            long started = Stopwatch.GetTimestamp();
            Wallet[] wallets = await setup.CreateAsync(ct);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"setup: {wallets.Length} users registered and logged in, {wallets.Sum(w => w.Deposited):N0} {o.Currency} minor units deposited in {wallets.Sum(w => w.Deposits)} deposits ({Stopwatch.GetElapsedTime(started).TotalSeconds:0.0} s)"));
            return wallets;
        }

        private static bool Invalid(LoadOptions o, TextWriter error)
        {
            List<string> problems = o.Problems().ToList();
            foreach (string p in problems) error.WriteLine("error: " + p);
            return problems.Count > 0;
        }

        /// <summary>For setup and the self-check only: the load's own connections are made by each driver.</summary>
        private static HttpClient SetupHttpClient() =>
            new(new SocketsHttpHandler { MaxConnectionsPerServer = 16, UseCookies = false }) { Timeout = TimeSpan.FromSeconds(60) };
    }
}
