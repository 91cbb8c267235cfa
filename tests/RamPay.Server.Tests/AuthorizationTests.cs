using System.Net;
using RamPay.Core;

namespace RamPay.Server.Tests;

/// <summary>
/// Who may read and move what: user B never reads A's account, history or payments, and never moves money that
/// is A's, over HTTP and over TCP. The admin reads everything.
/// </summary>
public class AuthorizationTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    /// <summary>A (the victim), B (the intruder) and C (A's counterparty), with A's received payment and an open authorization between A and C.</summary>
    private sealed record Scene(TestUser A, TestUser B, TestUser C, long PaidToA, long PaidByA, long HoldAToC, long HoldCToA)
    {
        public long[] Wallets => [A.WalletId, B.WalletId, C.WalletId];
    }

    private async Task<Scene> SceneAsync()
    {
        var a = await _api.SignUpAsync(deposit: 10_000);
        var b = await _api.SignUpAsync(deposit: 10_000);
        var c = await _api.SignUpAsync(deposit: 10_000);
        long paidToA = (await _api.PayAsync(c, a.WalletId, 1_000)).Long("id");
        long paidByA = (await _api.PayAsync(a, c.WalletId, 1_000)).Long("id");
        long holdAToC = (await _api.PayAsync(a, c.WalletId, 500, capture: false)).Long("id");
        long holdCToA = (await _api.PayAsync(c, a.WalletId, 500, capture: false)).Long("id");
        return new Scene(a, b, c, paidToA, paidByA, holdAToC, holdCToA);
    }

    [Fact]
    public async Task B_cannot_read_As_account_history_or_payments()
    {
        var s = await SceneAsync();
        (await _api.GetAsync($"/v1/accounts/{s.A.WalletId}", s.B.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        (await _api.GetAsync($"/v1/accounts/{s.A.WalletId}/payments", s.B.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        foreach (long payment in new[] { s.PaidToA, s.PaidByA, s.HoldAToC, s.HoldCToA })
            (await _api.GetAsync($"/v1/payments/{payment}", s.B.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        // Nor the platform's funding account.
        var deposit = (await _api.HistoryAsync(s.A.WalletId, s.A.Token)).Single(p => p.Str("kind") == "deposit");
        (await _api.GetAsync($"/v1/accounts/{deposit.Long("from_account")}", s.B.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task The_admin_reads_any_account_history_and_payment()
    {
        var s = await SceneAsync();
        string admin = await _api.AdminTokenAsync();
        var account = (await _api.GetAsync($"/v1/accounts/{s.A.WalletId}", admin)).Expect(HttpStatusCode.OK);
        Assert.Equal(s.A.UserId, account.Long("owner_user_id"));
        var history = (await _api.GetAsync($"/v1/accounts/{s.A.WalletId}/payments", admin)).Expect(HttpStatusCode.OK);
        Assert.Equal(5, history["data"]!.AsArray().Count);
        Assert.Equal(s.PaidToA, (await _api.GetAsync($"/v1/payments/{s.PaidToA}", admin)).Expect(HttpStatusCode.OK).Long("id"));
    }

    [Fact]
    public async Task Over_HTTP_B_cannot_move_As_money_or_act_on_As_payments()
    {
        var s = await SceneAsync();
        var attempts = new (string Path, object Body)[]
        {
            ("/v1/payments", new { from_account = s.A.WalletId, to_account = s.B.WalletId, amount = 100, currency = "USD" }),
            ("/v1/payments", new { from_account = s.A.WalletId, to_account = s.B.WalletId, amount = 100, currency = "USD", capture = false }),
            ($"/v1/accounts/{s.A.WalletId}/deposits", new { amount = 100, currency = "USD" }),
            ($"/v1/payments/{s.PaidToA}/refunds", new { amount = 100 }),
            ($"/v1/payments/{s.HoldAToC}/capture", new { }),
            ($"/v1/payments/{s.HoldCToA}/capture", new { amount = 100 }),
            ($"/v1/payments/{s.HoldAToC}/void", new { }),
            ("/v1/payments/batch", new { payments = new[] { new { from_account = s.A.WalletId, to_account = s.B.WalletId, amount = 100, currency = "USD" } } }),
        };
        foreach (var (path, body) in attempts)
        {
            if (path.EndsWith("/batch", StringComparison.Ordinal))
            {
                var before = await _api.StateAsync(s.A.WalletId);
                var batch = (await _api.PostAsync(path, s.B.Token, body)).Expect(HttpStatusCode.OK);
                var result = batch["results"]![0]!;
                Assert.True(result.Long("status") == 403 && result["error"]!.Str("code") == "not_account_owner", batch.ToJsonString());
                Assert.Equal(before, await _api.StateAsync(s.A.WalletId));
                continue;
            }
            await _api.ExpectRejectedAsync(() => _api.PostAsync(path, s.B.Token, body), HttpStatusCode.Forbidden, "not_account_owner", s.Wallets);
        }
        // The holds are still open and A's received payment unrefunded.
        Assert.Equal("authorized", (await _api.PaymentAsync(s.HoldAToC)).Str("status"));
        Assert.Equal("authorized", (await _api.PaymentAsync(s.HoldCToA)).Str("status"));
        Assert.Equal(0, (await _api.PaymentAsync(s.PaidToA)).Long("refunded"));
    }

    [Fact]
    public async Task Over_HTTP_the_payer_cannot_refund_a_payment_only_the_payee_can()
    {
        var s = await SceneAsync();
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{s.PaidToA}/refunds", s.C.Token, new { amount = 100 }),
            HttpStatusCode.Forbidden, "not_account_owner", s.Wallets);
        (await _api.PostAsync($"/v1/payments/{s.PaidToA}/refunds", s.A.Token, new { amount = 100 })).Expect(HttpStatusCode.Created);
    }

    [Fact]
    public async Task Over_TCP_the_Welcome_client_id_is_the_user_id_and_B_cannot_move_As_money()
    {
        var s = await SceneAsync();
        var (connection, clientId) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, s.B.Token);
        await using var _ = connection;
        Assert.Equal(s.B.UserId, clientId);

        var before = new List<AccountState>();
        foreach (long w in s.Wallets) before.Add(await _api.StateAsync(w));
        string k = Api.NewKey();
        var commands = new[]
        {
            Wire.Transfer(k + "-1", s.A.WalletId, s.B.WalletId, 100),
            Wire.Authorize(k + "-2", s.A.WalletId, s.B.WalletId, 100),
            Wire.Deposit(k + "-3", s.A.WalletId, 100),
            Wire.Refund(k + "-4", s.PaidToA, 100),
            Wire.Capture(k + "-5", s.HoldAToC),
            Wire.Capture(k + "-6", s.HoldCToA, 100),
            Wire.Void(k + "-7", s.HoldAToC),
            Wire.Void(k + "-8", s.HoldCToA),
        };
        var results = await connection.RoundTripAsync(7, commands);
        for (int i = 0; i < results.Length; i++)
        {
            Assert.True(results[i].Code == ResultCode.NotAccountOwner && results[i].Id == 0,
                $"command {i} ({commands[i].Type}) should be not_account_owner, got {Wire.Describe(results[i])}");
        }
        for (int i = 0; i < s.Wallets.Length; i++) Assert.Equal(before[i], await _api.StateAsync(s.Wallets[i]));

        // B can still move B's own money on the same connection.
        var own = await connection.RoundTripAsync(8, Wire.Transfer(k + "-9", s.B.WalletId, s.A.WalletId, 100));
        Assert.True(own[0].Code == ResultCode.Ok && own[0].Id > 0, Wire.Describe(own[0]));
    }

    [Fact]
    public async Task Over_TCP_a_key_is_scoped_to_the_connections_user()
    {
        var s = await SceneAsync();
        string key = Api.NewKey();
        var (a, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, s.A.Token);
        var (b, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, s.B.Token);
        await using (a)
        await using (b)
        {
            var fromA = await a.RoundTripAsync(2, Wire.Transfer(key, s.A.WalletId, s.C.WalletId, 10));
            var fromB = await b.RoundTripAsync(2, Wire.Transfer(key, s.B.WalletId, s.C.WalletId, 10));
            Assert.True(fromA[0] is { Code: ResultCode.Ok, Replayed: false } && fromB[0] is { Code: ResultCode.Ok, Replayed: false },
                $"A: {Wire.Describe(fromA[0])}, B: {Wire.Describe(fromB[0])}");
            Assert.NotEqual(fromA[0].Id, fromB[0].Id);
        }
    }
}
