using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Journal;
using RamPay.Postgres;
using RamPay.Postgres.Tests;
using RamPay.Server.Tests;
using RamPay.Sinks;
using Xunit.Abstractions;

namespace RamPay.Kafka.Tests;

/// <summary>
/// The real server process with <c>RamPay:Kafka:BootstrapServers</c> set, each test on a topic of its own: what is paid
/// over HTTP appears on the topic with its event ids, before and after a restart from a snapshot; a SIGKILL in the
/// middle of load and a restart (with PostgreSQL beside Kafka) end with the database and the topic equal to the
/// journal; a broker that stops answering (<see cref="PrivateKafkaBroker"/>, SIGSTOP) is ridden out (payments go on,
/// the lag grows, the sink catches up when it answers again), also across a SIGKILL of the server while it hangs, and
/// pushes back past the lag limit; a bad Kafka setting stops the server before it journals anything.
/// "Equal to the journal" is checked against what <see cref="EventMapper"/> derives from the server's own data
/// directory, read offline after the server stopped: every event id there is on the topic with the same key, header,
/// time and payload bytes, no other id is, and re-sent events (at least once) are identical copies.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ServerKafkaTests(ITestOutputHelper output)
{
    /// <summary>The ledger limits the tests give the server (small: less memory); the offline replay uses the same.</summary>
    private static readonly LedgerOptions ServerLedger = SinkServerSettings.Ledger;

    private static string[] Settings(string bootstrap, string topic, params string[] more) =>
        SinkServerSettings.With([$"Kafka:BootstrapServers={bootstrap}", $"Kafka:Topic={topic}", .. more]);

    private static string NewTopic() => "rampay.t." + Guid.NewGuid().ToString("N")[..16];

    // ---- the tests ----

    [Fact]
    public async Task Payments_over_http_appear_on_the_topic_with_their_events_in_order_and_the_topic_equals_the_journal()
    {
        string topic = NewTopic();
        await using var server = await ServerProcess.StartAsync(Settings(KafkaTestBroker.Bootstrap, topic, "Sinks:BatchChanges=16"));
        var api = new Api(server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up with the start-up records");

        var alice = await api.SignUpAsync();
        var bob = await api.SignUpAsync();
        var carol = await api.SignUpAsync();
        long aliceDeposit = (await api.DepositAsync(alice, 50_000)).Long("id");
        long bobDeposit = (await api.DepositAsync(bob, 1_000)).Long("id");
        long toBob = (await api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        long toCarol = (await api.PostAsync("/v1/payments", alice.Token, new
        {
            from_account = alice.WalletId, to_account = carol.WalletId, amount = 2_000, currency = "USD",
            description = "Rent \"March\"", webhook_url = "https://example.com/hook",
        })).Expect(HttpStatusCode.Created).Long("id");
        long auth = (await api.PayAsync(alice, bob.WalletId, 3_000, capture: false)).Long("id");
        (await api.PostAsync($"/v1/payments/{auth}/capture", bob.Token, new { amount = 1_800 })).Expect(HttpStatusCode.OK);
        long refund1 = (await api.PostAsync($"/v1/payments/{auth}/refunds", bob.Token, new { amount = 300 })).Expect(HttpStatusCode.Created).Long("id");
        long refund2 = (await api.PostAsync($"/v1/payments/{auth}/refunds", bob.Token, new { amount = 200 })).Expect(HttpStatusCode.Created).Long("id");
        long voided = (await api.PayAsync(bob, alice.WalletId, 500, capture: false)).Long("id");
        (await api.PostAsync($"/v1/payments/{voided}/void", bob.Token, new { })).Expect(HttpStatusCode.OK);
        long expiring = (await api.PostAsync("/v1/payments", bob.Token, new
        {
            from_account = bob.WalletId, to_account = carol.WalletId, amount = 100, currency = "USD", capture = false, hold_timeout_ms = 200,
        })).Expect(HttpStatusCode.Created).Long("id");
        // Left open until after a restart (the second half of the test).
        long toCaptureLater = (await api.PayAsync(alice, bob.WalletId, 700, capture: false)).Long("id");
        long toVoidLater = (await api.PayAsync(alice, carol.WalletId, 600, capture: false)).Long("id");
        long toExpireLater = (await api.PostAsync("/v1/payments", alice.Token, new
        {
            from_account = alice.WalletId, to_account = bob.WalletId, amount = 50, currency = "USD", capture = false, hold_timeout_ms = 4_000,
        })).Expect(HttpStatusCode.Created).Long("id");
        (await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 10_000_000, currency = "USD" }))
            .ExpectError(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync($"/v1/admin/accounts/{carol.WalletId}/freeze", admin, new { })).Expect(HttpStatusCode.OK);
        (await api.PostAsync($"/v1/admin/accounts/{carol.WalletId}/unfreeze", admin, new { })).Expect(HttpStatusCode.OK);
        // The hold lapses at the first command after its expiry: a tick at the latest (one a second).
        await WaitForAsync(async () => (await api.PaymentAsync(expiring)).Str("status") == "expired", "the 200 ms hold to expire", server);

        var sinks = await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up");
        Assert.Equal(0, sinks["kafka"]!.Long("failures"));
        Assert.True(sinks["kafka"]!.Long("checkpoint") > 0 && sinks["kafka"]!.Long("changes_written") > 0, sinks.ToJsonString());
        var metrics = (await server.Http.GetStringAsync("/metrics")).Replace("{} ", " ", StringComparison.Ordinal).Split('\n');
        Assert.Contains("rampay_sink_lag_records{sink=\"kafka\"} 0", metrics);
        Assert.Contains("rampay_sink_connected{sink=\"kafka\"} 1", metrics);

        // What a consumer reads now, while the server runs: no failure, so no event twice.
        List<TopicEvent> received = Parse(await KafkaTestBroker.ReadAllAsync(topic));
        Assert.Equal(received.Count, received.Select(r => r.Id).Distinct().Count());
        // The server produced them with the bundled librdkafka (KafkaNativeLibrary), not the machine's: the only
        // librdkafka file mapped into its process is the package's, next to rampay-server.dll.
        Assert.Equal([NativeLibraryTests.BundledPath(AppContext.BaseDirectory)], NativeLibraryTests.LibrdkafkaFilesMappedBy(server.ProcessId));
        AssertOrderedPerKey(received);

        string Key(long account) => account.ToString(CultureInfo.InvariantCulture);
        // Every event about a payment (payment.id), in the order a consumer of its key reads them.
        List<TopicEvent> Of(long paymentId)
        {
            var events = received.Where(r => r.Json["payment"]?["id"] is JsonValue v && v.GetValue<long>() == paymentId).ToList();
            Assert.True(events.Count > 0, $"no event names payment {paymentId}");
            Assert.Single(events.Select(e => e.Partition).Distinct());
            return [.. events.OrderBy(e => e.Offset)];
        }
        void Expect(long paymentId, long key, params string[] types)
        {
            var events = Of(paymentId);
            Assert.True(types.SequenceEqual(events.Select(e => e.Type)), $"payment {paymentId}: expected {string.Join(", ", types)}, got {string.Join(", ", events.Select(e => e.Type))}");
            Assert.All(events, e => Assert.Equal(Key(key), e.Key));
            Assert.All(events, e => Assert.Equal(e.Type + ".v1", e.Header));
        }
        Expect(aliceDeposit, alice.WalletId, "PaymentCreated", "PaymentApproved");
        Expect(bobDeposit, bob.WalletId, "PaymentCreated", "PaymentApproved");
        Expect(toBob, alice.WalletId, "PaymentCreated", "PaymentApproved");
        Expect(toCarol, alice.WalletId, "PaymentCreated", "PaymentApproved");
        Expect(auth, alice.WalletId, "PaymentCreated", "PaymentAuthorized", "PaymentCaptured", "PaymentRefunded", "PaymentRefunded");
        Expect(voided, bob.WalletId, "PaymentCreated", "PaymentAuthorized", "PaymentVoided");
        Expect(expiring, bob.WalletId, "PaymentCreated", "PaymentAuthorized", "PaymentVoided");

        // The fields say what the API says.
        Assert.All(Of(toCarol), e => Assert.Equal(("Rent \"March\"", "https://example.com/hook"), (e.Json["payment"]!.Str("description"), e.Json["payment"]!.Str("webhook_url"))));
        var captured = Of(auth)[2].Json["payment"]!;
        Assert.Equal(("captured", 3_000L, 1_800L, 0L), (captured.Str("status"), captured.Long("amount"), captured.Long("captured"), captured.Long("refunded")));
        var refunds = Of(auth).Where(e => e.Type == "PaymentRefunded").ToList();
        Assert.Equal(new[] { refund1, refund2 }, refunds.Select(e => e.Json["refund"]!.Long("id")));
        Assert.Equal(new[] { 300L, 500L }, refunds.Select(e => e.Json["payment"]!.Long("refunded")));
        Assert.Equal(new[] { auth, auth }, refunds.Select(e => e.Json["refund"]!.Long("parent_id")));
        Assert.Equal(("requested", "voided"), (Of(voided)[2].Json.Str("reason"), Of(voided)[2].Json["payment"]!.Str("status")));
        var expired = Of(expiring)[2].Json;
        Assert.Equal(("expired", "expired"), (expired.Str("reason"), expired["payment"]!.Str("status")));
        Assert.True(expired.IsNull("client_id"), expired.ToJsonString());
        foreach (long id in new[] { aliceDeposit, bobDeposit, toBob, toCarol, auth, voided, expiring })
        {
            var p = await api.PaymentAsync(id);
            var last = Of(id)[^1].Json["payment"]!;
            Assert.Equal((p.Str("kind"), p.Str("status"), p.Long("from_account"), p.Long("to_account"), p.Long("amount"), p.Long("captured"), p.Long("refunded")),
                (last.Str("kind"), last.Str("status"), last.Long("from_account"), last.Long("to_account"), last.Long("amount"), last.Long("captured"), last.Long("refunded")));
        }
        var failed = Assert.Single(received, r => r.Type == "PaymentFailed");
        Assert.Equal((Key(alice.WalletId), "insufficient_funds", 10_000_000L), (failed.Key, failed.Json.Str("reason"), failed.Json["payment"]!.Long("amount")));
        Assert.True(failed.Json["payment"]!.IsNull("id"), failed.Payload);
        var carolsAccount = received.Where(r => r.Type is "AccountFrozen" or "AccountUnfrozen").ToList();
        Assert.Equal(new[] { "AccountFrozen", "AccountUnfrozen" }, carolsAccount.Select(e => e.Type));
        Assert.All(carolsAccount, e => Assert.Equal((Key(carol.WalletId), carol.WalletId), (e.Key, e.Json["account"]!.Long("id"))));
        Assert.Equal(new[] { true, false }, carolsAccount.Select(e => e.Json["account"]!["frozen"]!.GetValue<bool>()));
        var registered = received.Where(r => r.Type == "UserRegistered").ToDictionary(r => r.Json["user"]!.Str("email"));
        foreach (var user in new[] { alice, bob, carol })
        {
            Assert.True(registered.TryGetValue(user.Email, out var e), $"no UserRegistered for {user.Email}");
            Assert.Equal((Key(user.WalletId), user.UserId, user.WalletId), (e.Key, e.Json["user"]!.Long("id"), e.Json["account"]!.Long("id")));
            Assert.DoesNotContain("password", e.Payload, StringComparison.OrdinalIgnoreCase);
        }
        Assert.Equal("admin", registered[ServerProcess.AdminEmail].Json["user"]!.Str("role"));

        // A clean stop drains the sink to the journal's last record; the topic is then exactly the journal's events.
        Assert.Equal(0, await server.StopAsync());
        var (expected, journalEnd) = FromJournal(server.DataDirectory);
        Assert.Equal(journalEnd, KafkaCheckpoint(server.DataDirectory, topic).Sequence);
        Assert.Equal(0, AssertTopicEqualsJournal(Parse(await KafkaTestBroker.ReadAllAsync(topic)), expected, duplicatesAllowed: false));
        Assert.True(SnapshotStore.TryLoadLatest(Path.Combine(server.DataDirectory, "snapshots"), out var snapshot, out _));
        Assert.Equal(journalEnd, snapshot.Sequence); // the clean stop's snapshot, where the restarted follower starts
        output.WriteLine($"before the restart: {expected.Count} events for {journalEnd} journal records");

        // Restarted on the same data: the sink's checkpoint is the journal's end, so the follower starts from the
        // snapshot the clean stop wrote there. Follow-ups on payments made before the restart must give the very events
        // (payload bytes included) that a replay of the whole journal gives.
        await server.RestartAsync();
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the restarted server's Kafka sink to catch up");
        (await api.PostAsync($"/v1/payments/{toCaptureLater}/capture", bob.Token, new { amount = 650 })).Expect(HttpStatusCode.OK);
        (await api.PostAsync($"/v1/payments/{toVoidLater}/void", alice.Token, new { })).Expect(HttpStatusCode.OK);
        long refundLater = (await api.PostAsync($"/v1/payments/{toCarol}/refunds", carol.Token, new { amount = 250 })).Expect(HttpStatusCode.Created).Long("id");
        long depositLater = (await api.DepositAsync(carol, 5_000)).Long("id");
        await WaitForAsync(async () => (await api.PaymentAsync(toExpireLater)).Str("status") == "expired", "the 4 s hold to expire", server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the restarted server's Kafka sink to catch up");
        Assert.Equal(0, await server.StopAsync());

        (expected, journalEnd) = FromJournal(server.DataDirectory);
        Assert.Equal(journalEnd, KafkaCheckpoint(server.DataDirectory, topic).Sequence);
        received = Parse(await KafkaTestBroker.ReadAllAsync(topic));
        Assert.Equal(0, AssertTopicEqualsJournal(received, expected, duplicatesAllowed: false));
        Expect(toCaptureLater, alice.WalletId, "PaymentCreated", "PaymentAuthorized", "PaymentCaptured");
        Expect(toVoidLater, alice.WalletId, "PaymentCreated", "PaymentAuthorized", "PaymentVoided");
        Expect(toExpireLater, alice.WalletId, "PaymentCreated", "PaymentAuthorized", "PaymentVoided");
        Expect(toCarol, alice.WalletId, "PaymentCreated", "PaymentApproved", "PaymentRefunded");
        Expect(depositLater, carol.WalletId, "PaymentCreated", "PaymentApproved");
        Assert.Equal(refundLater, Of(toCarol)[2].Json["refund"]!.Long("id"));
        Assert.Equal("expired", Of(toExpireLater)[2].Json.Str("reason"));
        output.WriteLine($"after the restart: {expected.Count} events for {journalEnd} journal records");
    }

    [Fact]
    public async Task With_both_sinks_a_server_killed_mid_load_and_restarted_ends_with_the_database_and_the_topic_equal_to_the_journal()
    {
        await using var db = await TestDatabase.CreateAsync();
        string topic = NewTopic();
        await using var server = await ServerProcess.StartAsync(Settings(KafkaTestBroker.Bootstrap, topic,
            $"Postgres:Connection={db.ConnectionString}", "Sinks:BatchChanges=32", "Fsync=false"));
        var api = new Api(server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka"), "both sinks to catch up with the start-up records");

        const int Payers = 6;
        var payers = new List<TestUser>();
        for (int i = 0; i < Payers; i++) payers.Add(await api.SignUpAsync(deposit: 1_000_000));
        var acknowledged = new ConcurrentBag<(long Id, string Kind)>();
        var errors = new ConcurrentBag<string>();
        var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bool killed = false;
        var load = payers.Select((payer, i) => Task.Run(async () =>
        {
            long to = payers[(i + 1) % Payers].WalletId;
            for (int n = 0; !Volatile.Read(ref killed); n++)
            {
                long amount = 1 + n % 97;
                try
                {
                    // Mostly transfers; every eighth an authorization, then its capture.
                    bool authorize = n % 8 == 7;
                    var r = await api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = to, amount, currency = "USD", capture = !authorize });
                    if (r.Status != HttpStatusCode.Created)
                    {
                        if (!Volatile.Read(ref killed)) errors.Add($"{(int)r.Status} {r.Raw}");
                        continue;
                    }
                    long id = r.Body!.Long("id");
                    acknowledged.Add((id, authorize ? "authorization" : "transfer"));
                    if (authorize)
                    {
                        var c = await api.PostAsync($"/v1/payments/{id}/capture", payer.Token, new { });
                        if (c.Status == HttpStatusCode.OK) acknowledged.Add((id, "capture"));
                        else if (!Volatile.Read(ref killed)) errors.Add($"{(int)c.Status} {c.Raw}");
                    }
                    if (acknowledged.Count >= 1_200) enough.TrySetResult();
                }
                catch (Exception e)
                {
                    // After the kill the server went away under us: that is the point. Before it, it is a failure.
                    if (!Volatile.Read(ref killed)) errors.Add(e.Message);
                    return;
                }
            }
        })).ToArray();
        var first = await Task.WhenAny(enough.Task, Task.WhenAll(load), Task.Delay(TimeSpan.FromSeconds(60)));
        Assert.True(first == enough.Task, $"only {acknowledged.Count} commands were acknowledged; errors: {string.Join("; ", errors.Take(5))}");
        var before = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK)["sinks"]!;
        Volatile.Write(ref killed, true);
        await server.KillAsync();
        await Task.WhenAll(load);
        Assert.Empty(errors);

        long journalAtKill = JournalVerifier.Verify(Path.Combine(server.DataDirectory, "journal")).LastSequence;
        long kafkaAtKill = KafkaCheckpoint(server.DataDirectory, topic).Sequence;
        long postgresAtKill = await db.ScalarAsync("SELECT journal_sequence FROM sink_checkpoint");
        output.WriteLine($"{acknowledged.Count} commands acknowledged; at the kill the journal ended at {journalAtKill}, the Kafka checkpoint was {kafkaAtKill}, " +
                         $"PostgreSQL's {postgresAtKill} (sinks before the kill: {before.ToJsonString()})");
        Assert.True(kafkaAtKill <= journalAtKill && postgresAtKill <= journalAtKill);

        await server.RestartAsync();
        await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka"), "the restarted server's sinks to catch up");
        Assert.Equal(0, await server.StopAsync());

        var (expected, journalEnd) = FromJournal(server.DataDirectory);
        Assert.True(journalEnd >= journalAtKill);
        var report = DatabaseTools.Verify(db.DirectConnectionString, server.DataDirectory, ServerLedger);
        Assert.True(report.Agrees, "rampay db verify disagrees:\n  " + string.Join("\n  ", report.Problems));
        Assert.Equal(journalEnd, report.Checkpoint);
        Assert.Equal(journalEnd, KafkaCheckpoint(server.DataDirectory, topic).Sequence);

        var received = Parse(await KafkaTestBroker.ReadAllAsync(topic));
        int duplicates = AssertTopicEqualsJournal(received, expected, duplicatesAllowed: true);
        // Every acknowledged command is there as a consumer sees it.
        var types = received.Where(r => r.Json["payment"]?["id"] is JsonValue).ToLookup(r => r.Json["payment"]!.Long("id"), r => r.Type);
        foreach (var (id, kind) in acknowledged)
        {
            string wanted = kind switch { "transfer" => "PaymentApproved", "authorization" => "PaymentAuthorized", _ => "PaymentCaptured" };
            Assert.True(types[id].Contains("PaymentCreated") && types[id].Contains(wanted), $"acknowledged {kind} {id}: events {string.Join(", ", types[id])}");
        }
        output.WriteLine($"{expected.Count} events for {journalEnd} records; {received.Count} messages on the topic, {duplicates} of them re-sent copies");
    }

    [Fact]
    public async Task A_broker_that_stops_answering_is_ridden_out_payments_go_on_the_lag_grows_and_the_sink_catches_up_with_nothing_lost()
    {
        string topic = NewTopic();
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:{Partitions}");
        await using var server = await ServerProcess.StartAsync(Settings(broker.Bootstrap, topic,
            "Sinks:BatchChanges=256", "Kafka:WriteTimeoutMs=2000", "Kafka:OpenTimeoutMs=1000"));
        var api = new Api(server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up with the start-up records");
        var payers = await PayersAsync(api);
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up");

        var paid = new List<long>();
        broker.Pause();
        try
        {
            // One journal batch of payments from every payer: the sink's first write to the silent broker spans more
            // partitions than the producer keeps requests in flight (5), so part of it never leaves the producer, and
            // only a re-send from the checkpoint can bring it to the topic.
            var burst = await BatchPayAsync(api, payers);
            paid.AddRange(burst);
            for (int i = 0; i < 10; i++) paid.Add((await api.PayAsync(payers[0], payers[1].WalletId, 10 + i)).Long("id"));
            // A batch waits for acknowledgements that do not come; past the write's time limit the producer is torn
            // down, and every reconnection fails within its own limit while the broker stays silent.
            var sinks = await WaitForSinksAsync(api, s => s["kafka"]!.Str("status") == "retrying" && s["kafka"]!.Long("failures") > 0,
                "the Kafka sink to report retrying", extra: broker.Describe);
            var kafka = sinks["kafka"]!;
            long lag = kafka.Long("lag_records");
            Assert.True(lag >= paid.Count, sinks.ToJsonString());
            Assert.False(sinks["backpressure"]!.GetValue<bool>());
            Assert.True(kafka["last_error"] is not null, sinks.ToJsonString());

            for (int i = 0; i < 20; i++) paid.Add((await api.PayAsync(payers[2], payers[3].WalletId, 100 + i)).Long("id"));
            var later = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK)["sinks"]!["kafka"]!;
            Assert.True(later.Long("lag_records") >= lag + 20, $"the lag did not grow: {lag} then {later.ToJsonString()}");
            Assert.Equal(kafka.Long("checkpoint"), later.Long("checkpoint"));
            Assert.NotEqual("ok", later.Str("status"));
        }
        finally
        {
            broker.Resume();
        }

        var caughtUp = await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up once the broker answers again", extra: broker.Describe);
        Assert.True(caughtUp["kafka"]!.Long("failures") > 0);
        Assert.Equal(0, await server.StopAsync());
        await AssertTopicCaughtUpAfterTheHangAsync(server, broker, topic, paid);
    }

    /// <summary>
    /// Issue 16, item 5, Kafka down: with both sinks on and the broker hanging, PostgreSQL keeps up with every
    /// payment (the Kafka sink's batches go to its spool on disk instead of holding the follower); once the broker
    /// answers, Kafka catches up from its spool, and the database and the topic both equal the journal (the topic
    /// with re-sent copies at most: at least once). Before the spool, PostgreSQL stopped a queue's length past Kafka.
    /// </summary>
    [Fact]
    public async Task A_hanging_broker_does_not_hold_back_postgres_and_kafka_catches_up_from_its_spool_when_it_answers()
    {
        await using var db = await TestDatabase.CreateAsync();
        string topic = NewTopic();
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:4");
        await using var server = await ServerProcess.StartAsync(Settings(broker.Bootstrap, topic, $"Postgres:Connection={db.ConnectionString}",
            "Sinks:BatchChanges=16", "Sinks:QueueBatches=1", "Kafka:WriteTimeoutMs=2000", "Kafka:OpenTimeoutMs=1000"));
        var api = new Api(server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka"), "both sinks to catch up with the start-up records");
        var payers = await PayersAsync(api);
        await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka"), "both sinks to catch up");

        var paid = new List<long>();
        broker.Pause();
        try
        {
            // 500 payments: about 30 batches of 16 changes, far more than Kafka's queue (1) and its batch in flight.
            for (int round = 0; round < 5; round++) paid.AddRange(await BatchPayAsync(api, payers));
            var sinks = await WaitForSinksAsync(api, s => s["postgres"]!.Long("lag_records") == 0 && s["postgres"]!.Str("status") == "ok",
                "PostgreSQL to keep up while the broker hangs", timeoutSeconds: 30, extra: broker.Describe);
            var kafka = sinks["kafka"]!;
            Assert.True(kafka.Long("lag_records") >= paid.Count, sinks.ToJsonString());
            Assert.True(kafka.Long("spooled_batches") > 0 && kafka.Long("batches_spooled_total") > 0, sinks.ToJsonString());
            Assert.False(sinks["backpressure"]!.GetValue<bool>());
            // Payments made now still reach PostgreSQL at once.
            long late = (await api.PayAsync(payers[0], payers[1].WalletId, 4_242)).Long("id");
            paid.Add(late);
            await WaitForSinksAsync(api, s => s["postgres"]!.Long("lag_records") == 0, "PostgreSQL to write the late payment", timeoutSeconds: 30);
            Assert.Equal(1, await db.ScalarAsync($"SELECT count(*) FROM payments WHERE id = {late} AND status = 'posted'"));
            output.WriteLine($"while the broker hung: {sinks.ToJsonString()}");
        }
        finally
        {
            broker.Resume();
        }

        var caughtUp = await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka") && s["kafka"]!.Long("spooled_batches") == 0,
            "Kafka to catch up from its spool once the broker answers", timeoutSeconds: 90, extra: broker.Describe);
        output.WriteLine($"after: {caughtUp.ToJsonString()}");
        Assert.Equal(0, await server.StopAsync());
        Assert.False(Directory.Exists(Path.Combine(server.DataDirectory, "sinks", "kafka.spool")), "the spool is removed at a clean stop");
        await AssertBothEqualTheJournalAsync(server, db, broker, topic, paid);
    }

    /// <summary>
    /// Issue 16, item 5, the reverse: PostgreSQL refuses connections (<see cref="TestDatabase.TakeDownAsync"/>) while
    /// payments flow; Kafka keeps up; PostgreSQL catches up from its spool when it is back, with no row lost or doubled.
    /// </summary>
    [Fact]
    public async Task PostgreSQL_down_does_not_hold_back_kafka_and_postgres_catches_up_from_its_spool_when_it_is_back()
    {
        await using var db = await TestDatabase.CreateAsync();
        string topic = NewTopic();
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:4");
        await using var server = await ServerProcess.StartAsync(Settings(broker.Bootstrap, topic, $"Postgres:Connection={db.ConnectionString}",
            "Sinks:BatchChanges=16", "Sinks:QueueBatches=1"));
        var api = new Api(server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka"), "both sinks to catch up with the start-up records");
        var payers = await PayersAsync(api);
        await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka"), "both sinks to catch up");

        var paid = new List<long>();
        await db.TakeDownAsync();
        try
        {
            for (int round = 0; round < 5; round++) paid.AddRange(await BatchPayAsync(api, payers));
            var sinks = await WaitForSinksAsync(api, s => s["kafka"]!.Long("lag_records") == 0 && s["postgres"]!.Long("failures") > 0,
                "Kafka to keep up while PostgreSQL is down", timeoutSeconds: 30);
            var postgres = sinks["postgres"]!;
            Assert.True(postgres.Long("lag_records") >= paid.Count, sinks.ToJsonString());
            Assert.True(postgres.Long("spooled_batches") > 0, sinks.ToJsonString());
            Assert.NotEqual("ok", postgres.Str("status"));
            output.WriteLine($"while PostgreSQL was down: {sinks.ToJsonString()}");
        }
        finally
        {
            await db.BringUpAsync();
        }

        var caughtUp = await WaitForSinksAsync(api, s => CaughtUp(s, "postgres", "kafka") && s["postgres"]!.Long("spooled_batches") == 0,
            "PostgreSQL to catch up from its spool once it is back", timeoutSeconds: 90);
        output.WriteLine($"after: {caughtUp.ToJsonString()}");
        Assert.Equal(0, await server.StopAsync());
        await AssertBothEqualTheJournalAsync(server, db, broker, topic, paid);
    }

    /// <summary>After a clean stop: the database agrees with the journal (`rampay db verify`), the topic equals it (re-sent copies allowed), every payment is on both.</summary>
    private async Task AssertBothEqualTheJournalAsync(ServerProcess server, TestDatabase db, PrivateKafkaBroker broker, string topic, List<long> paid)
    {
        var (expected, journalEnd) = FromJournal(server.DataDirectory);
        var report = DatabaseTools.Verify(db.DirectConnectionString, server.DataDirectory, ServerLedger);
        Assert.True(report.Agrees, "rampay db verify disagrees:\n  " + string.Join("\n  ", report.Problems));
        Assert.Equal(journalEnd, report.Checkpoint);
        Assert.Equal(journalEnd, KafkaCheckpoint(server.DataDirectory, topic).Sequence);
        Assert.Equal(paid.Count, await db.ScalarAsync($"SELECT count(*) FROM payments WHERE id IN ({string.Join(",", paid)}) AND status = 'posted'"));
        var received = Parse(await KafkaTestBroker.ReadAllAsync(topic, broker.Bootstrap));
        int duplicates = AssertTopicEqualsJournal(received, expected, duplicatesAllowed: true);
        AssertEveryPaymentApproved(received, paid);
        output.WriteLine($"{expected.Count} events for {journalEnd} records; {received.Count} messages on the topic, {duplicates} of them re-sent copies");
    }

    [Fact]
    public async Task A_server_killed_while_the_broker_hangs_restarts_with_the_broker_still_silent_and_re_sends_from_its_checkpoint()
    {
        string topic = NewTopic();
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:{Partitions}");
        // The write's own time limit is long: the kill lands while the first batch to the silent broker still waits.
        await using var server = await ServerProcess.StartAsync(Settings(broker.Bootstrap, topic, "Sinks:BatchChanges=256", "Kafka:OpenTimeoutMs=1000"));
        var api = new Api(server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up with the start-up records");
        var payers = await PayersAsync(api);
        var before = await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up");
        long checkpointBefore = before["kafka"]!.Long("checkpoint");
        // The sink writes its checkpoint file before it reports the checkpoint; an engine Tick may have moved both on since.
        Assert.True(KafkaCheckpoint(server.DataDirectory, topic).Sequence >= checkpointBefore, "the checkpoint file is behind what /health/ready reported");

        var paid = new List<long>();
        broker.Pause();
        try
        {
            paid.AddRange(await BatchPayAsync(api, payers));
            // The follower has handed the burst on and the sink is writing it (its events produced, none acknowledged).
            var sinks = await WaitForSinksAsync(api, s => s.Long("follower_sequence") >= s["kafka"]!.Long("checkpoint") + BurstSize, "the follower to hand the burst on");
            await Task.Delay(300);
            await server.KillAsync();
            long journalAtKill = JournalVerifier.Verify(Path.Combine(server.DataDirectory, "journal")).LastSequence;
            // Nothing of the burst was acknowledged, so the checkpoint stops short of its first record. (It may have
            // passed an engine Tick journaled before the pause: the ticker runs every second whatever the test does.)
            var burstIds = paid.ToHashSet();
            long burstStart = FromJournal(server.DataDirectory).Events
                .Where(e => e.Type == "PaymentCreated" && burstIds.Contains(JsonNode.Parse(e.Payload)!["payment"]!.Long("id")))
                .Min(e => e.Position.Item1);
            long checkpointAtKill = KafkaCheckpoint(server.DataDirectory, topic).Sequence;
            Assert.InRange(checkpointAtKill, checkpointBefore, burstStart - 1);
            output.WriteLine($"killed with the journal at {journalAtKill}, the burst from {burstStart}, the Kafka checkpoint at {checkpointAtKill} " +
                             $"({checkpointBefore} before the pause); sinks before: {sinks.ToJsonString()}");

            // Restarted with the broker still silent: ready at once, the sink still connecting, its lag counted from
            // the checkpoint the last run noted; payments go on.
            await server.RestartAsync();
            var restarted = await WaitForSinksAsync(api, s => s["kafka"]!.Long("failures") > 0, "the sink to fail to reach the silent broker", extra: broker.Describe);
            Assert.Equal("connecting", restarted["kafka"]!.Str("status"));
            Assert.True(restarted["kafka"]!.Long("lag_records") >= journalAtKill - checkpointAtKill, restarted.ToJsonString());
            string token = await api.LoginAsync(payers[0].Email, payers[0].Password);
            for (int i = 0; i < 5; i++) paid.Add((await api.PayAsync(payers[0] with { Token = token }, payers[1].WalletId, 50 + i)).Long("id"));
        }
        finally
        {
            broker.Resume();
        }

        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up once the broker answers again", extra: broker.Describe);
        Assert.Equal(0, await server.StopAsync());
        await AssertTopicCaughtUpAfterTheHangAsync(server, broker, topic, paid);
    }

    /// <summary>
    /// After a broker hang and a clean stop: the checkpoint is the journal's end, the topic holds every event the
    /// journal gives (re-sent copies allowed), every payment made is approved on it, and the burst spanned more
    /// partitions than the producer keeps requests in flight.
    /// </summary>
    private async Task AssertTopicCaughtUpAfterTheHangAsync(ServerProcess server, PrivateKafkaBroker broker, string topic, List<long> paid)
    {
        var (expected, journalEnd) = FromJournal(server.DataDirectory);
        Assert.Equal(journalEnd, KafkaCheckpoint(server.DataDirectory, topic).Sequence);
        var received = Parse(await KafkaTestBroker.ReadAllAsync(topic, broker.Bootstrap));
        int duplicates = AssertTopicEqualsJournal(received, expected, duplicatesAllowed: true);
        AssertEveryPaymentApproved(received, paid);
        Assert.True(PartitionsOf(received, paid.Take(BurstSize)) > 5, "the burst should span more partitions than the producer has requests in flight");
        output.WriteLine($"{expected.Count} events for {journalEnd} records; {received.Count} messages on the topic, {duplicates} of them re-sent copies; " +
                         $"the burst spans {PartitionsOf(received, paid.Take(BurstSize))} partitions");
    }

    [Fact]
    public async Task Kafka_behind_past_a_tiny_lag_limit_refuses_payments_503_sinks_lagging_until_it_catches_up()
    {
        string topic = NewTopic();
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:2");
        await using var server = await ServerProcess.StartAsync(Settings(broker.Bootstrap, topic,
            "Sinks:MaxLagRecords=20", "Kafka:WriteTimeoutMs=2000", "Kafka:OpenTimeoutMs=1000"));
        var api = new Api(server);
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up with the start-up records");
        var alice = await api.SignUpAsync(deposit: 100_000);
        var bob = await api.SignUpAsync();
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up");

        broker.Pause();
        try
        {
            int accepted = 0;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                Assert.True(DateTime.UtcNow < deadline, $"no payment was refused after {accepted} accepted; {broker.Describe()}");
                var r = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 7, currency = "USD" });
                if (r.Status == HttpStatusCode.Created) { accepted++; continue; }
                r.ExpectError(HttpStatusCode.ServiceUnavailable, "sinks_lagging");
                Assert.False(string.IsNullOrEmpty(r.Header("Retry-After")), $"no Retry-After: {r.Raw}");
                break;
            }
            Assert.InRange(accepted, 0, 21); // ticks count too
            var sinks = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK)["sinks"]!;
            Assert.True(sinks["backpressure"]!.GetValue<bool>(), sinks.ToJsonString());
            Assert.Contains("kafka", sinks["backpressure_reason"]!.GetValue<string>(), StringComparison.Ordinal);
        }
        finally
        {
            broker.Resume();
        }

        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to catch up and back-pressure to clear", extra: broker.Describe);
        long id = (await api.PayAsync(alice, bob.WalletId, 8)).Long("id");
        await WaitForSinksAsync(api, s => CaughtUp(s, "kafka"), "the Kafka sink to write the payment after the refusal");
        Assert.Equal(0, await server.StopAsync());

        var (expected, _) = FromJournal(server.DataDirectory);
        var received = Parse(await KafkaTestBroker.ReadAllAsync(topic, broker.Bootstrap));
        AssertTopicEqualsJournal(received, expected, duplicatesAllowed: true);
        Assert.Contains(received, r => r.Type == "PaymentApproved" && r.Json["payment"]!.Long("id") == id);
    }

    [Fact]
    public async Task A_bad_Kafka_setting_is_bad_configuration_exit_2_before_anything_is_journaled()
    {
        string dir = Directory.CreateTempSubdirectory("rampay-kafka-config-").FullName;
        try
        {
            foreach (string bad in new[] { "--RamPay:Kafka:Topic=bad topic", "--RamPay:Kafka:WriteTimeoutMs=0" })
            {
                var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (string arg in (string[])[Path.Combine(AppContext.BaseDirectory, "rampay-server.dll"), "--data", dir, "--http-port", "0", "--tcp-port", "0",
                             "--RamPay:Kafka:BootstrapServers=127.0.0.1:1", "--RamPay:Engine:MaxAccounts=1000", "--RamPay:Engine:MaxPayments=1000", bad])
                    start.ArgumentList.Add(arg);
                using var process = System.Diagnostics.Process.Start(start)!;
                var stdout = process.StandardOutput.ReadToEndAsync();
                var stderr = process.StandardError.ReadToEndAsync();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                await process.WaitForExitAsync(timeout.Token);
                string printed = await stdout + await stderr;
                Assert.True(process.ExitCode == 2, $"{bad}: exit code {process.ExitCode}, expected 2 (bad configuration):\n{printed}");
                Assert.Contains("RamPay:Kafka", printed, StringComparison.Ordinal);
                Assert.False(Directory.Exists(Path.Combine(dir, "journal")) && JournalVerifier.Verify(Path.Combine(dir, "journal")).LastSequence > 0, $"{bad}: the server journaled before refusing its configuration");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ---- payers and payments ----

    /// <summary>Partitions of the private brokers' topics, and payers: enough that a burst of payments from every payer spans more partitions than the producer has requests in flight (5).</summary>
    private const int Partitions = 16;
    private const int PayerCount = 16;
    private const int BurstSize = 100;

    private static async Task<List<TestUser>> PayersAsync(Api api)
    {
        var payers = new List<TestUser>();
        for (int i = 0; i < PayerCount; i++) payers.Add(await api.SignUpAsync(deposit: 1_000_000));
        return payers;
    }

    /// <summary><see cref="BurstSize"/> transfers in one request (the admin's batch: one journal batch), payer i to payer i+1; returns their ids.</summary>
    private static async Task<List<long>> BatchPayAsync(Api api, List<TestUser> payers)
    {
        var items = Enumerable.Range(0, BurstSize).Select(i => new
        {
            from_account = payers[i % payers.Count].WalletId, to_account = payers[(i + 1) % payers.Count].WalletId, amount = 1 + i, currency = "USD",
        }).ToArray();
        var results = (await api.PostAsync("/v1/payments/batch", await api.AdminTokenAsync(), new { payments = items })).Expect(HttpStatusCode.OK)["results"]!.AsArray();
        Assert.All(results, r => Assert.True(r!.Long("status") == 201, r!.ToJsonString()));
        return [.. results.Select(r => r!["payment"]!.Long("id"))];
    }

    private static void AssertEveryPaymentApproved(List<TopicEvent> received, IEnumerable<long> paid)
    {
        var approved = received.Where(r => r.Type == "PaymentApproved").Select(r => r.Json["payment"]!.Long("id")).ToHashSet();
        var created = received.Where(r => r.Type == "PaymentCreated").Select(r => r.Json["payment"]!.Long("id")).ToHashSet();
        Assert.All(paid, id => Assert.True(created.Contains(id) && approved.Contains(id), $"payment {id} has no PaymentCreated and PaymentApproved on the topic"));
    }

    private static int PartitionsOf(List<TopicEvent> received, IEnumerable<long> payments)
    {
        var ids = payments.ToHashSet();
        return received.Where(r => r.Json["payment"]?["id"] is JsonValue v && ids.Contains(v.GetValue<long>())).Select(r => r.Partition).Distinct().Count();
    }

    // ---- what a consumer reads, and what the journal says it must read ----

    /// <summary>One message as a consumer reads it, with its payload parsed.</summary>
    private sealed record TopicEvent(int Partition, long Offset, string Key, string Id, (long, int, int) Position, string Type, string Header,
        string Payload, long TimestampMs, JsonNode Json);

    /// <summary>One event <see cref="EventMapper"/> derives from the journal, encoded as the sink encodes it.</summary>
    private sealed record JournalEvent(string Id, (long, int, int) Position, string Key, string Type, string Payload, long TimestampMs);

    private static List<TopicEvent> Parse(List<KafkaTestBroker.Message> messages) =>
    [
        .. messages.Select(m =>
        {
            string payload = Encoding.UTF8.GetString(m.Value);
            var json = JsonNode.Parse(payload)!;
            return new TopicEvent(m.Partition, m.Offset, Encoding.ASCII.GetString(m.Key), json.Str("event_id"),
                (json.Long("sequence"), (int)json.Long("index"), (int)json.Long("ordinal")), json.Str("type"),
                m.Headers.TryGetValue(KafkaEventSink.HeaderName, out var h) && m.Headers.Count == 1 ? h : $"headers: {string.Join(", ", m.Headers)}",
                payload, m.TimestampMs, json);
        }),
    ];

    /// <summary>
    /// Every event of the server's journal, in stream order: a <see cref="LedgerFollower"/> over its data directory
    /// (the server stopped) from the first record to the last, each change mapped by <see cref="EventMapper"/> and
    /// encoded by <see cref="EventEncoder"/>, as the sink does.
    /// </summary>
    private static (List<JournalEvent> Events, long JournalEnd) FromJournal(string dataDirectory)
    {
        string journal = Path.Combine(dataDirectory, "journal");
        long end = JournalVerifier.Verify(journal).LastSequence;
        var encoder = new EventEncoder();
        var mapped = new MappedEvent[EventMapper.MaxEventsPerChange];
        var events = new List<JournalEvent>();
        using var follower = new LedgerFollower(Path.Combine(dataDirectory, "snapshots"), journal, ServerLedger, afterSequence: 0);
        var batch = new ChangeBatch(4096);
        while (follower.LastSequence < end)
        {
            batch.Clear();
            Assert.True(follower.Poll(end, 4096, batch) > 0, $"the follower stopped at {follower.LastSequence} of {end}");
            foreach (ref readonly Change change in batch.Changes)
            {
                int n = EventMapper.Map(change, mapped);
                for (int i = 0; i < n; i++)
                {
                    events.Add(new JournalEvent(
                        EventMapper.EventId(change.Sequence, change.Index, mapped[i].Ordinal), (change.Sequence, change.Index, mapped[i].Ordinal),
                        mapped[i].KeyAccount.ToString(CultureInfo.InvariantCulture), EventTypes.Name(mapped[i].Type),
                        Encoding.UTF8.GetString(encoder.Encode(change, mapped[i])), change.TimestampMs));
                }
            }
        }
        return (events, end);
    }

    private static SinkCheckpoint KafkaCheckpoint(string dataDirectory, string topic) =>
        new KafkaCheckpointFile(Path.Combine(dataDirectory, "sinks"), topic).Read();

    /// <summary>
    /// The topic holds exactly the journal's events: every id the journal gives is there, no other id is, and each
    /// message (a re-sent copy too) has the journal's key, header, time and payload bytes. One key is on one partition,
    /// and per partition the documented consumer (skip whatever is not above the highest position processed) reads
    /// exactly that partition's events of the journal, in journal order. Returns how many messages are copies.
    /// </summary>
    private static int AssertTopicEqualsJournal(List<TopicEvent> received, List<JournalEvent> expected, bool duplicatesAllowed)
    {
        var problems = new List<string>();
        void P(string message) { if (problems.Count < 30) problems.Add(message); }
        var byId = expected.ToDictionary(e => e.Id);
        foreach (var r in received)
        {
            if (!byId.TryGetValue(r.Id, out var e)) { P($"{r.Id} (partition {r.Partition}, offset {r.Offset}) is no event of the journal: {r.Payload}"); continue; }
            if ((r.Key, r.Header, r.Position, r.TimestampMs, r.Type) != (e.Key, e.Type + ".v1", e.Position, e.TimestampMs, e.Type))
                P($"{r.Id} (partition {r.Partition}, offset {r.Offset}): key {r.Key}, header {r.Header}, time {r.TimestampMs}; the journal's: key {e.Key}, {e.Type}.v1, time {e.TimestampMs}");
            if (r.Payload != e.Payload) P($"{r.Id} (partition {r.Partition}, offset {r.Offset}) payload differs:\n    topic   {r.Payload}\n    journal {e.Payload}");
        }
        var ids = received.Select(r => r.Id).ToHashSet();
        var missing = expected.Where(e => !ids.Contains(e.Id)).ToList();
        if (missing.Count > 0) P($"{missing.Count} events of the journal are not on the topic: {string.Join(", ", missing.Take(10).Select(e => $"{e.Id} {e.Type}"))}");
        int duplicates = received.Count - ids.Count;
        if (duplicates > 0 && !duplicatesAllowed)
            P($"{duplicates} events are on the topic more than once: {string.Join(", ", received.GroupBy(r => r.Id).Where(g => g.Count() > 1).Take(10).Select(g => g.Key))}");

        var partitionOf = new Dictionary<string, int>();
        foreach (var r in received)
        {
            if (partitionOf.TryGetValue(r.Key, out int p) && p != r.Partition) P($"key {r.Key} is on partitions {p} and {r.Partition}");
            partitionOf[r.Key] = r.Partition;
        }
        foreach (var partition in received.GroupBy(r => r.Partition))
        {
            var read = new List<string>();
            var highest = (0L, 0, -1);
            foreach (var r in partition.OrderBy(r => r.Offset))
            {
                if (Compare(r.Position, highest) <= 0) continue;
                read.Add(r.Id);
                highest = r.Position;
            }
            var journal = expected.Where(e => partitionOf.TryGetValue(e.Key, out int p) && p == partition.Key).Select(e => e.Id).ToList();
            if (!read.SequenceEqual(journal))
            {
                int at = read.Zip(journal).TakeWhile(x => x.First == x.Second).Count();
                P($"partition {partition.Key}: a consumer reads {read.Count} events, the journal has {journal.Count} for it; " +
                  $"they part at #{at}: read {(at < read.Count ? read[at] : "(end)")}, journal {(at < journal.Count ? journal[at] : "(end)")}");
            }
        }
        Assert.True(problems.Count == 0, $"the topic ({received.Count} messages) does not equal the journal ({expected.Count} events):\n  " + string.Join("\n  ", problems));
        return duplicates;
    }

    /// <summary>Per key, the events' first arrivals come in journal order: (sequence, index, ordinal) increasing.</summary>
    private static void AssertOrderedPerKey(List<TopicEvent> received)
    {
        foreach (var key in received.GroupBy(r => r.Key))
        {
            Assert.Single(key.Select(r => r.Partition).Distinct());
            var previous = (0L, 0, -1);
            foreach (var r in key.OrderBy(r => r.Offset).DistinctBy(r => r.Id))
            {
                Assert.True(Compare(r.Position, previous) > 0, $"key {key.Key}: {r.Id} at offset {r.Offset} follows {previous}");
                previous = r.Position;
            }
        }
    }

    private static int Compare((long, int, int) a, (long, int, int) b) => EventMapperTests.Compare(a, b);

    // ---- the server's health ----

    private static bool CaughtUp(JsonNode sinks, params string[] names) =>
        names.All(n => sinks[n] is { } s && s.Long("lag_records") == 0 && s.Str("status") == "ok") && !sinks["backpressure"]!.GetValue<bool>();

    /// <summary>Polls <c>/health/ready</c> until its <c>sinks</c> object satisfies <paramref name="condition"/>.</summary>
    private static async Task<JsonNode> WaitForSinksAsync(Api api, Func<JsonNode, bool> condition, string what, int timeoutSeconds = 60, Func<string>? extra = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (true)
        {
            var ready = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
            var sinks = ready["sinks"] ?? throw new Xunit.Sdk.XunitException($"no sinks in /health/ready: {ready.ToJsonString()}");
            if (condition(sinks)) return sinks;
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"timed out waiting for {what}: {ready.ToJsonString()}{(extra is null ? "" : "\n" + extra())}");
            await Task.Delay(50);
        }
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what, ServerProcess server, int timeoutSeconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"timed out waiting for {what}; {server.Describe()}");
            await Task.Delay(50);
        }
    }
}
