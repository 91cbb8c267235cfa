using RamPay.Contracts;
using Account = RamPay.Contracts.Account;
using Payment = RamPay.Contracts.Payment;
using User = RamPay.Contracts.User;
using System.Net;

namespace RamPay.Client.Tests;

/// <summary>The client against the real server: its JSON, headers, errors and TCP handshake as they are, not as the docs say.</summary>
public sealed class ServerIntegrationTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Http_sign_up_deposit_pay_replay_and_read_back()
    {
        (RamPayHttpClient ada, User adaUser) = await server.NewUserAsync();
        (RamPayHttpClient bob, User bobUser) = await server.NewUserAsync();
        using (ada)
        using (bob)
        {
            Assert.True((await ada.GetReadyAsync()).IsReady);
            UserProfileView me = await ada.GetMeAsync();
            Assert.Equal((adaUser.UserId, adaUser.WalletAccountId, "user"), (me.UserId, me.WalletAccountId, me.Role));

            RamPayResponse<Payment> deposit = await ada.DepositAsync(adaUser.WalletAccountId, 10_000, "USD", "dep-1");
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
            Assert.Equal("deposit", deposit.Value.Kind);

            var request = new PaymentRequest(adaUser.WalletAccountId, bobUser.WalletAccountId, 2_500, "USD") { Description = "dinner", WebhookUrl = "https://example.com/hook" };
            RamPayResponse<Payment> paid = await ada.CreatePaymentAsync(request, "pay-1");
            Assert.False(paid.Replayed);
            Assert.Equal(("transfer", "posted", 2_500L, 2_500L), (paid.Value.Kind, paid.Value.Status, paid.Value.Amount, paid.Value.Captured));
            Assert.Equal(("dinner", "https://example.com/hook"), (paid.Value.Description, paid.Value.WebhookUrl));

            // The same key and request: the first result again, marked replayed, and no second payment.
            RamPayResponse<Payment> again = await ada.CreatePaymentAsync(request, "pay-1");
            Assert.True(again.Replayed);
            Assert.Equal(paid.Value.Id, again.Value.Id);
            // The same key, another amount: a conflict.
            var conflict = await Assert.ThrowsAsync<RamPayApiException>(() => ada.CreatePaymentAsync(request with { Amount = 2_600 }, "pay-1"));
            Assert.Equal((HttpStatusCode.Conflict, "exists_with_different_amount"), (conflict.StatusCode, conflict.Code));

            Account account = await ada.GetAccountAsync(adaUser.WalletAccountId);
            Assert.Equal((7_500L, 0L, 7_500L, "wallet"), (account.Posted, account.Pending, account.Available, account.Type));
            Assert.Equal(2_500, (await bob.GetAccountAsync(bobUser.WalletAccountId)).Posted);
            Assert.Equal(paid.Value.Id, (await bob.GetPaymentAsync(paid.Value.Id)).Id);

            var poor = await Assert.ThrowsAsync<RamPayApiException>(() => bob.CreatePaymentAsync(new PaymentRequest(bobUser.WalletAccountId, adaUser.WalletAccountId, 1_000_000, "USD")));
            Assert.Equal((HttpStatusCode.UnprocessableEntity, "insufficient_funds"), (poor.StatusCode, poor.Code));
            var notYours = await Assert.ThrowsAsync<RamPayApiException>(() => bob.GetAccountAsync(adaUser.WalletAccountId));
            Assert.Equal(HttpStatusCode.Forbidden, notYours.StatusCode);

            var ids = new List<long>();
            await foreach (Payment p in ada.ListAllPaymentsAsync(adaUser.WalletAccountId, pageSize: 1)) ids.Add(p.Id);
            Assert.Equal([paid.Value.Id, deposit.Value.Id], ids);
        }
    }

    [Fact]
    public async Task Http_authorize_capture_refund_void_batch_and_freeze()
    {
        (RamPayHttpClient ada, User adaUser) = await server.NewUserAsync();
        (RamPayHttpClient bob, User bobUser) = await server.NewUserAsync();
        using RamPayHttpClient admin = server.NewHttpClient();
        using (ada)
        using (bob)
        {
            await ada.DepositAsync(adaUser.WalletAccountId, 10_000, "USD");
            var hold = new PaymentRequest(adaUser.WalletAccountId, bobUser.WalletAccountId, 3_000, "USD") { Capture = false, HoldTimeoutMs = 60_000 };
            Payment authorized = (await ada.CreatePaymentAsync(hold)).Value;
            Assert.Equal("authorized", authorized.Status);
            Assert.NotNull(authorized.ExpiresAt);
            Assert.Equal(-3_000, (await ada.GetAccountAsync(adaUser.WalletAccountId)).Pending);

            Payment captured = (await bob.CaptureAsync(authorized.Id, 2_000)).Value;
            Assert.Equal(("captured", 2_000L), (captured.Status, captured.Captured));
            Payment refund = (await bob.RefundAsync(authorized.Id, 500)).Value;
            Assert.Equal(("refund", authorized.Id), (refund.Kind, refund.RefundOf));

            Payment second = (await ada.CreatePaymentAsync(hold)).Value;
            Assert.Equal("voided", (await ada.VoidAsync(second.Id)).Value.Status);
            Assert.Equal(10_000 - 2_000 + 500, (await ada.GetAccountAsync(adaUser.WalletAccountId)).Available);

            RamPayResponse<BatchResponse> batch = await ada.CreatePaymentsAsync(
                [new PaymentRequest(adaUser.WalletAccountId, bobUser.WalletAccountId, 100, "USD"), new PaymentRequest(adaUser.WalletAccountId, bobUser.WalletAccountId, 1_000_000, "USD")], "batch-1");
            Assert.Equal((201, 422), (batch.Value.Results[0].Status, batch.Value.Results[1].Status));
            Assert.Equal("insufficient_funds", batch.Value.Results[1].Error!.Code);
            RamPayResponse<BatchResponse> batchAgain = await ada.CreatePaymentsAsync(
                [new PaymentRequest(adaUser.WalletAccountId, bobUser.WalletAccountId, 100, "USD"), new PaymentRequest(adaUser.WalletAccountId, bobUser.WalletAccountId, 1_000_000, "USD")], "batch-1");
            Assert.True(batchAgain.Value.Results[0].Replayed);
            Assert.Equal(batch.Value.Results[0].Payment!.Id, batchAgain.Value.Results[0].Payment!.Id);

            await admin.LoginAsync(ServerFixture.AdminEmail, ServerFixture.AdminPassword);
            Assert.True((await admin.FreezeAccountAsync(bobUser.WalletAccountId)).Value.Frozen);
            var frozen = await Assert.ThrowsAsync<RamPayApiException>(() => ada.CreatePaymentAsync(new PaymentRequest(adaUser.WalletAccountId, bobUser.WalletAccountId, 1, "USD")));
            Assert.Equal("account_frozen", frozen.Code);
            Assert.False((await admin.UnfreezeAccountAsync(bobUser.WalletAccountId)).Value.Frozen);
            var forbidden = await Assert.ThrowsAsync<RamPayApiException>(() => ada.FreezeAccountAsync(bobUser.WalletAccountId));
            Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        }
    }

    [Fact]
    public async Task Tcp_with_the_login_token_deposits_pays_and_replays_and_http_sees_it()
    {
        (RamPayHttpClient ada, User adaUser) = await server.NewUserAsync();
        (RamPayHttpClient bob, User bobUser) = await server.NewUserAsync();
        using (ada)
        using (bob)
        {
            await using RamPayTcpClient tcp = await RamPayTcpClient.ConnectAsync(server.TcpHost, server.TcpPort, ada.AccessToken!, "integration test");
            Assert.Equal(adaUser.UserId, tcp.ClientId);
            Assert.True(tcp.ServerLimits.MaxCommandsPerBatch >= 100);
            Assert.True(await tcp.PingAsync() > TimeSpan.Zero);

            WireCommand[] batch =
            [
                // From account 0: the platform's funding account for the currency.
                new() { Type = CommandType.Deposit, Currency = Currency.USD, Key = IdempotencyKey.FromString("t-dep"), FromAccount = 0, ToAccount = adaUser.WalletAccountId, Amount = 5_000 },
                new() { Type = CommandType.Transfer, Currency = Currency.USD, Key = IdempotencyKey.FromString("t-pay"), FromAccount = adaUser.WalletAccountId, ToAccount = bobUser.WalletAccountId, Amount = 1_200 },
                // Bob's money is not Ada's to move.
                new() { Type = CommandType.Transfer, Currency = Currency.USD, Key = IdempotencyKey.FromString("t-steal"), FromAccount = bobUser.WalletAccountId, ToAccount = adaUser.WalletAccountId, Amount = 1 },
            ];
            WireResult[] results = await tcp.SendBatchAsync(batch);
            Assert.Equal([ResultCode.Ok, ResultCode.Ok, ResultCode.NotAccountOwner], results.Select(r => r.Code));
            Assert.All(results, r => Assert.False(r.Replayed));

            // Resent (as after a lost connection): the same ids, marked replayed, nothing applied twice.
            WireResult[] again = await tcp.SendBatchAsync(batch.AsMemory(0, 2));
            Assert.All(again, r => Assert.True(r.Replayed));
            Assert.Equal(results.Take(2).Select(r => r.Id), again.Select(r => r.Id));

            Payment paid = await ada.GetPaymentAsync(results[1].Id);
            Assert.Equal((adaUser.WalletAccountId, bobUser.WalletAccountId, 1_200L, "transfer"), (paid.FromAccount, paid.ToAccount, paid.Amount, paid.Kind));
            Assert.Equal(3_800, (await ada.GetAccountAsync(adaUser.WalletAccountId)).Posted);
            Assert.Equal(1_200, (await bob.GetAccountAsync(bobUser.WalletAccountId)).Posted);
        }
    }

    [Fact]
    public async Task Tcp_refuses_a_bad_token_with_authentication_failed()
    {
        var e = await Assert.ThrowsAsync<RamPayProtocolException>(() => RamPayTcpClient.ConnectAsync(server.TcpHost, server.TcpPort, "not-a-jwt"));
        Assert.Equal(ProtocolErrorCode.AuthenticationFailed, e.Code);
        Assert.True(e.SentByServer);
    }
}
