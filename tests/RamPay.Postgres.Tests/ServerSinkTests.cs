using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Journal;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Postgres.Tests;

/// <summary>
/// The real server process with <c>RamPay:Postgres:Connection</c> set: what is paid over HTTP shows up in PostgreSQL,
/// <c>/health/ready</c> and <c>/metrics</c> report the sink, a SIGKILL in the middle of load and a restart end with a
/// database equal to the journal, PostgreSQL going away is ridden out (and pushes back once the lag passes its limit).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ServerSinkTests(ITestOutputHelper output)
{
    private static readonly LedgerOptions ServerLedger = SinkServerSettings.Ledger;

    private static string[] Settings(TestDatabase db, params string[] more) =>
        SinkServerSettings.With([$"Postgres:Connection={db.ConnectionString}", .. more]);

    private static async Task<JsonNode> PostgresStatusAsync(Api api)
    {
        var ready = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
        return ready["sinks"]?["postgres"] ?? throw new Xunit.Sdk.XunitException($"no sinks.postgres in /health/ready: {ready.ToJsonString()}");
    }

    /// <summary>Polls <c>/health/ready</c> until the PostgreSQL sink's detail satisfies <paramref name="condition"/>.</summary>
    private static async Task<JsonNode> WaitForSinkAsync(Api api, Func<JsonNode, bool> condition, string what, int timeoutSeconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (true)
        {
            var ready = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
            var sinks = ready["sinks"]!;
            if (condition(sinks)) return sinks;
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"timed out waiting for {what}: {ready.ToJsonString()}");
            await Task.Delay(50);
        }
    }

    private static bool CaughtUp(JsonNode sinks) =>
        sinks["postgres"]!.Long("lag_records") == 0 && sinks["postgres"]!.Str("status") == "ok" && !sinks["backpressure"]!.GetValue<bool>();

    private static async Task<TestUser> SignUpAsync(Api api, long deposit = 0) => await api.SignUpAsync(deposit: deposit);

    [Fact]
    public async Task Payments_over_http_become_rows_that_match_the_api_and_the_metrics_and_health_report_the_sink()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await ServerProcess.StartAsync(Settings(db, "Sinks:BatchChanges=16"));
        var api = new Api(server);
        // A new database starts at checkpoint 0: until its first batch the lag counts as unbounded (back-pressure).
        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up with the start-up records");

        var alice = await SignUpAsync(api, deposit: 50_000);
        var bob = await SignUpAsync(api, deposit: 1_000);
        var carol = await SignUpAsync(api);
        var ids = new List<long>();
        ids.Add((await api.PayAsync(alice, bob.WalletId, 1_000)).Long("id"));
        ids.Add((await api.PayAsync(alice, carol.WalletId, 2_000)).Long("id"));
        long auth = (await api.PayAsync(alice, bob.WalletId, 3_000, capture: false)).Long("id");
        ids.Add(auth);
        (await api.PostAsync($"/v1/payments/{auth}/capture", bob.Token, new { amount = 1_800 })).Expect(HttpStatusCode.OK);
        ids.Add((await api.PostAsync($"/v1/payments/{auth}/refunds", bob.Token, new { amount = 300 })).Expect(HttpStatusCode.Created).Long("id"));
        ids.Add((await api.PostAsync($"/v1/payments/{auth}/refunds", bob.Token, new { amount = 200 })).Expect(HttpStatusCode.Created).Long("id"));
        long voided = (await api.PayAsync(bob, alice.WalletId, 500, capture: false)).Long("id");
        ids.Add(voided);
        (await api.PostAsync($"/v1/payments/{voided}/void", bob.Token, new { })).Expect(HttpStatusCode.OK);
        var refused = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 10_000_000, currency = "USD" });
        Assert.NotEqual(HttpStatusCode.Created, refused.Status);
        (await api.PostAsync($"/v1/admin/accounts/{carol.WalletId}/freeze", await api.AdminTokenAsync(), new { })).Expect(HttpStatusCode.OK);
        var deposits = (await api.HistoryAsync(alice.WalletId, alice.Token)).Where(p => p.Str("kind") == "deposit").Select(p => p.Long("id")).ToList();
        ids.AddRange(deposits);
        long funding = (await api.PaymentAsync(deposits[0])).Long("from_account");

        var sinks = await WaitForSinkAsync(api, CaughtUp, "the sink to catch up");
        var postgres = sinks["postgres"]!;
        Assert.True(postgres.Long("checkpoint") > 0 && postgres.Long("changes_written") > 0, postgres.ToJsonString());
        Assert.Equal(0, postgres.Long("failures"));

        foreach (long id in ids)
        {
            var p = await api.PaymentAsync(id);
            var row = (await db.RowsAsync($"SELECT kind, status, from_account_id, to_account_id, amount, captured, refunded, coalesce(parent_payment_id, 0) FROM payments WHERE id = {id}")).SingleOrDefault();
            Assert.True(row is not null, $"payment {id} is not in the database");
            object?[] expected = [p.Str("kind"), p.Str("status"), p.Long("from_account"), p.Long("to_account"), p.Long("amount"), p.Long("captured"), p.Long("refunded"), p["refund_of"] is null ? 0L : p.Long("refund_of")];
            Assert.Equal(expected, row);
        }
        Assert.Equal(new object?[] { "captured", 1_800L, 500L }, (await db.RowsAsync($"SELECT status, captured, refunded FROM payments WHERE id = {auth}")).Single());
        Assert.Equal(2, await db.ScalarAsync($"SELECT count(*) FROM refunds WHERE payment_id = {auth}"));

        foreach (long id in new[] { alice.WalletId, bob.WalletId, carol.WalletId, funding })
        {
            var a = await api.AccountAsync(id);
            var row = (await db.RowsAsync($"SELECT debits_posted, credits_posted, debits_pending, credits_pending, balance, available, frozen FROM accounts WHERE id = {id}")).Single();
            object?[] expected = [a.Long("debits_posted"), a.Long("credits_posted"), a.Long("debits_pending"), a.Long("credits_pending"), a.Long("posted"), a.Long("available"), a["frozen"]!.GetValue<bool>()];
            Assert.Equal(expected, row);
        }
        Assert.Equal(true, (await db.RowsAsync($"SELECT frozen FROM accounts WHERE id = {carol.WalletId}")).Single()[0]);
        foreach (var user in new[] { alice, bob, carol })
            Assert.Equal(new object?[] { user.UserId, user.WalletId }, (await db.RowsAsync($"SELECT id, wallet_account_id FROM users WHERE email = '{user.Email}'")).Single());
        Assert.Equal(1, await db.ScalarAsync($"SELECT count(*) FROM users WHERE email = '{ServerProcess.AdminEmail}' AND role = 'admin'"));

        var metrics = (await server.Http.GetStringAsync("/metrics")).Replace("{} ", " ", StringComparison.Ordinal).Split('\n');
        foreach (var name in new[] { "rampay_sink_checkpoint_sequence", "rampay_sink_lag_records", "rampay_sink_lag_seconds", "rampay_sink_connected", "rampay_sink_changes_written_total", "rampay_sink_failures_total" })
            Assert.True(metrics.Any(l => l.StartsWith(name + "{sink=\"postgres\"} ", StringComparison.Ordinal)), $"/metrics has no {name}{{sink=\"postgres\"}}:\n{string.Join('\n', metrics)}");
        Assert.Contains("rampay_sink_connected{sink=\"postgres\"} 1", metrics);
        Assert.Contains("rampay_ingress_backpressure 0", metrics);
        Assert.Contains(metrics, l => l.StartsWith("rampay_sinks_follower_sequence ", StringComparison.Ordinal));

        // A clean stop drains the sink to the journal's last record.
        Assert.Equal(0, await server.StopAsync());
        long journalEnd = JournalVerifier.Verify(Path.Combine(server.DataDirectory, "journal")).LastSequence;
        Assert.Equal(journalEnd, await db.ScalarAsync("SELECT journal_sequence FROM sink_checkpoint"));
        Mirror.AssertVerifyAgrees(db, server.DataDirectory, ServerLedger, journalEnd);
    }

    [Fact]
    public async Task A_server_killed_mid_load_and_restarted_ends_with_the_database_equal_to_the_journal()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await ServerProcess.StartAsync(Settings(db, "Sinks:BatchChanges=32", "Fsync=false"));
        var api = new Api(server);
        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up with the start-up records");

        const int Payers = 6;
        var payers = new List<TestUser>();
        for (int i = 0; i < Payers; i++) payers.Add(await SignUpAsync(api, deposit: 1_000_000));
        var acknowledged = new ConcurrentBag<(long Id, long From, long To, long Amount)>();
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
                    var r = await api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = to, amount, currency = "USD" });
                    if (r.Status == HttpStatusCode.Created) acknowledged.Add((r.Body!.Long("id"), payer.WalletId, to, amount));
                    else if (!Volatile.Read(ref killed)) errors.Add($"{(int)r.Status} {r.Raw}");
                    if (acknowledged.Count >= 1_500) enough.TrySetResult();
                }
                catch (Exception e) when (Volatile.Read(ref killed) || e is InvalidOperationException)
                {
                    return; // the server went away under us: that is the point
                }
            }
        })).ToArray();
        var first = await Task.WhenAny(enough.Task, Task.WhenAll(load), Task.Delay(TimeSpan.FromSeconds(90)));
        Assert.True(first == enough.Task, $"only {acknowledged.Count} payments were acknowledged; errors: {string.Join("; ", errors.Take(5))}");
        var before = await PostgresStatusAsync(api);
        Volatile.Write(ref killed, true);
        await server.KillAsync();
        await Task.WhenAll(load);
        Assert.Empty(errors);

        long journalAtKill = JournalVerifier.Verify(Path.Combine(server.DataDirectory, "journal")).LastSequence;
        long databaseAtKill = await db.ScalarAsync("SELECT journal_sequence FROM sink_checkpoint");
        output.WriteLine($"{acknowledged.Count} payments acknowledged; at the kill the journal ended at {journalAtKill}, the database was at {databaseAtKill} (sink before the kill: {before.ToJsonString()})");
        Assert.True(databaseAtKill <= journalAtKill);

        await server.RestartAsync();
        await WaitForSinkAsync(api, CaughtUp, "the restarted server's sink to catch up");
        long checkpoint = await db.ScalarAsync("SELECT journal_sequence FROM sink_checkpoint");
        Assert.True(checkpoint >= journalAtKill, $"the database is at {checkpoint}, the journal had {journalAtKill} records at the kill");
        // While the server runs (ticks keep coming), verify compares the database with the journal up to its checkpoint.
        Mirror.AssertVerifyAgrees(db, server.DataDirectory, ServerLedger, checkpoint, stillRunning: true);

        var rows = (await db.RowsAsync("SELECT id, from_account_id, to_account_id, amount, status FROM payments WHERE kind = 'transfer'")).ToDictionary(r => (long)r[0]!);
        foreach (var (id, from, to, amount) in acknowledged)
        {
            Assert.True(rows.TryGetValue(id, out var row), $"acknowledged payment {id} is not in the database");
            Assert.Equal(new object?[] { id, from, to, amount, "posted" }, row);
        }

        Assert.Equal(0, await server.StopAsync());
        long journalEnd = JournalVerifier.Verify(Path.Combine(server.DataDirectory, "journal")).LastSequence;
        Mirror.AssertVerifyAgrees(db, server.DataDirectory, ServerLedger, journalEnd);
    }

    [Fact]
    public async Task PostgreSQL_unavailable_under_the_lag_limit_the_server_keeps_accepting_reports_retrying_and_catches_up()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await ServerProcess.StartAsync(Settings(db, "Sinks:BatchChanges=64"));
        var api = new Api(server);
        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up with the start-up records");
        var alice = await SignUpAsync(api, deposit: 100_000);
        var bob = await SignUpAsync(api);
        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up");

        await db.TakeDownAsync();
        var paid = new List<long>();
        bool down = true;
        try
        {
            for (int i = 0; i < 40; i++) paid.Add((await api.PayAsync(alice, bob.WalletId, 10 + i)).Long("id"));
            var sinks = await WaitForSinkAsync(api, s => s["postgres"]!.Str("status") == "retrying" && s["postgres"]!.Long("failures") > 0,
                "the sink to report retrying");
            long lag = sinks["postgres"]!.Long("lag_records");
            Assert.True(lag >= 40, sinks.ToJsonString());
            Assert.False(sinks["backpressure"]!.GetValue<bool>());
            Assert.True(sinks["postgres"]!["last_error"] is not null, sinks.ToJsonString());

            for (int i = 0; i < 20; i++) paid.Add((await api.PayAsync(alice, bob.WalletId, 100 + i)).Long("id"));
            var later = (await PostgresStatusAsync(api));
            Assert.True(later.Long("lag_records") >= lag + 20, $"the lag did not grow: {lag} then {later.ToJsonString()}");
            Assert.Equal(sinks["postgres"]!.Long("checkpoint"), later.Long("checkpoint"));

            await db.BringUpAsync();
            down = false;
        }
        finally
        {
            if (down) await db.BringUpAsync();
        }

        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up once PostgreSQL is back");
        var rows = (await db.RowsAsync($"SELECT id, amount FROM payments WHERE from_account_id = {alice.WalletId} AND kind = 'transfer' ORDER BY id")).Select(r => (long)r[0]!).ToList();
        Assert.Equal(paid, rows);
        Assert.Equal(0, await server.StopAsync());
        long journalEnd = JournalVerifier.Verify(Path.Combine(server.DataDirectory, "journal")).LastSequence;
        Assert.Equal(journalEnd, await db.ScalarAsync("SELECT journal_sequence FROM sink_checkpoint"));
        Mirror.AssertVerifyAgrees(db, server.DataDirectory, ServerLedger, journalEnd);
    }

    [Fact]
    public async Task Past_a_tiny_lag_limit_payments_are_refused_503_sinks_lagging_with_retry_after_and_nothing_is_journaled_for_them()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await ServerProcess.StartAsync(Settings(db, "Sinks:MaxLagRecords=20"));
        var api = new Api(server);
        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up with the start-up records");
        var alice = await SignUpAsync(api, deposit: 100_000);
        var bob = await SignUpAsync(api);
        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up");

        await db.TakeDownAsync();
        string refusedKey = "";
        const long RefusedAmount = 4_321;
        bool down = true;
        try
        {
            int accepted = 0;
            ApiResponse? refusal = null;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (refusal is null)
            {
                Assert.True(DateTime.UtcNow < deadline, $"no payment was refused after {accepted} accepted: {(await PostgresStatusAsync(api)).ToJsonString()}");
                var before = await api.StateAsync(alice.WalletId);
                string key = Api.NewKey();
                var r = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = RefusedAmount, currency = "USD" }, key);
                if (r.Status == HttpStatusCode.Created) { accepted++; continue; }
                r.ExpectError(HttpStatusCode.ServiceUnavailable, "sinks_lagging");
                Assert.False(string.IsNullOrEmpty(r.Header("Retry-After")), $"no Retry-After: {r.Raw}");
                Assert.Equal(before, await api.StateAsync(alice.WalletId)); // reads still work; nothing moved
                refusal = r;
                refusedKey = key;
            }
            // Refused once more than 20 records behind: the 21st is still let in at 20 behind (ticks count too).
            Assert.InRange(accepted, 0, 21);
            // Anything that would be journaled is held back: a deposit, a sign-up.
            (await api.PostAsync($"/v1/accounts/{alice.WalletId}/deposits", alice.Token, new { amount = 5, currency = "USD" })).ExpectError(HttpStatusCode.ServiceUnavailable, "sinks_lagging");
            var sinks = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK)["sinks"]!;
            Assert.True(sinks["backpressure"]!.GetValue<bool>(), sinks.ToJsonString());
            Assert.Contains("postgres", sinks["backpressure_reason"]!.GetValue<string>());
            Assert.Contains("rampay_ingress_backpressure 1", (await server.Http.GetStringAsync("/metrics")).Replace("{} ", " ", StringComparison.Ordinal).Split('\n'));

            await db.BringUpAsync();
            down = false;
        }
        finally
        {
            if (down) await db.BringUpAsync();
        }

        await WaitForSinkAsync(api, CaughtUp, "the sink to catch up and back-pressure to clear");
        long accepted4321 = await db.ScalarAsync($"SELECT count(*) FROM payments WHERE from_account_id = {alice.WalletId} AND amount = {RefusedAmount}");
        Mirror.AssertVerifyAgrees(db, server.DataDirectory, ServerLedger, await db.ScalarAsync("SELECT journal_sequence FROM sink_checkpoint"), stillRunning: true);
        // The refused request's key was never journaled: sending it again makes a new payment, not a replay.
        var again = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = RefusedAmount, currency = "USD" }, refusedKey);
        again.Expect(HttpStatusCode.Created);
        Assert.NotEqual("true", again.Header("Idempotent-Replayed"));
        await WaitForSinkAsync(api, CaughtUp, "the sink to write the retried payment");
        Assert.Equal(accepted4321 + 1, await db.ScalarAsync($"SELECT count(*) FROM payments WHERE from_account_id = {alice.WalletId} AND amount = {RefusedAmount}"));
    }

    [Fact]
    public async Task Held_and_declined_payments_reach_the_database_with_their_fraud_columns_and_only_moved_money_has_entries()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var probe = await ServerProcess.StartAsync(Settings(db));
        var probeApi = new Api(probe);
        await WaitForSinkAsync(probeApi, CaughtUp, "the sink to catch up with the start-up records");
        var alice = await probeApi.SignUpAsync(deposit: 100_000);
        var bob = await probeApi.SignUpAsync();
        var mallory = await probeApi.SignUpAsync();
        Assert.Equal(0, await probe.StopAsync());

        // The same data with rules that trip for certain: 5,000 or more is held, anything to mallory is declined.
        await using var server = ServerProcess.OnDirectory(probe.DataDirectory, null,
            Settings(db, "Sinks:BatchChanges=8", "Fraud:AmountThreshold=5000", $"Fraud:BlockedAccounts={mallory.WalletId}"));
        await server.LaunchAsync();
        var api = new Api(server);
        string aliceToken = await api.LoginAsync(alice.Email, alice.Password);
        alice = alice with { Token = aliceToken };
        string admin = await api.AdminTokenAsync();

        long posted = (await api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        var approvedHeld = await api.PayAsync(alice, bob.WalletId, 6_000);
        Assert.Equal("held_for_review", approvedHeld.Str("status"));
        var declinedHeld = await api.PayAsync(alice, bob.WalletId, 7_000);
        var blocked = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = mallory.WalletId, amount = 100, currency = "USD" });
        Assert.Equal((HttpStatusCode)422, blocked.Status);
        long blockedId = blocked.Body!["error"]!.Long("payment_id");
        (await api.PostAsync($"/v1/payments/{approvedHeld.Long("id")}/review", admin, new { decision = "approve" })).Expect(HttpStatusCode.OK);
        (await api.PostAsync($"/v1/payments/{declinedHeld.Long("id")}/review", admin, new { decision = "decline" })).Expect(HttpStatusCode.OK);

        await WaitForSinkAsync(api, CaughtUp, "the sink to write the fraud decisions");
        async Task<(string Status, string? Reasons, bool Scored, long Entries)> Row(long id)
        {
            var rows = await db.RowsAsync($"SELECT status, array_to_string(fraud_reasons, ','), fraud_score IS NOT NULL AND fraud_model IS NOT NULL, (SELECT count(*) FROM ledger_entries e WHERE e.payment_id = p.id) FROM payments p WHERE id = {id}");
            var r = Assert.Single(rows);
            return ((string)r[0]!, r[1] as string, (bool)r[2]!, (long)r[3]!);
        }
        Assert.Equal(("posted", "", true, 2L), await Row(posted));
        Assert.Equal(("posted", "amount_over_threshold,review_approved", true, 2L), await Row(approvedHeld.Long("id")));
        Assert.Equal(("declined", "amount_over_threshold,review_declined", true, 0L), await Row(declinedHeld.Long("id")));
        Assert.Equal(("declined", "blocked_account", true, 0L), await Row(blockedId));

        Assert.Equal(0, await server.StopAsync());
        long journalEnd = JournalVerifier.Verify(Path.Combine(server.DataDirectory, "journal")).LastSequence;
        Mirror.AssertVerifyAgrees(db, server.DataDirectory, ServerLedger, journalEnd);
    }
}
