using System.Net;

namespace RamPay.Server.Tests;

/// <summary>
/// The ledger's capacity limits answer 503 with their codes, and a refused command changes nothing. Each test runs a
/// server of its own, configured to be nearly full from the start.
/// </summary>
public class CapacityTests
{
    private static async Task<(ServerProcess Server, Api Api)> StartAsync(params string[] settings)
    {
        var server = await ServerProcess.StartAsync([.. ServerFixture.TestSettings, .. settings]);
        return (server, new Api(server));
    }

    [Fact]
    public async Task A_sign_up_past_MaxAccounts_is_too_many_accounts_and_creates_neither_user_nor_wallet()
    {
        // The USD and EUR funding accounts, the USD and EUR rewards accounts (docs/rewards.md) and the admin's wallet take
        // 5 of 7 accounts.
        var (server, api) = await StartAsync("Engine:MaxAccounts=7");
        await using var _ = server;
        await api.SignUpAsync();
        await api.SignUpAsync();

        string email = Api.NewEmail();
        var signUp = () => api.PostAsync("/v1/users", null, new { email, password = Api.Password, name = "Late" }, key: "");
        (await signUp()).ExpectError(HttpStatusCode.ServiceUnavailable, "too_many_accounts");
        (await api.PostAsync("/v1/auth/token", null, new { email, password = Api.Password }, key: "")).ExpectError(HttpStatusCode.Unauthorized, "invalid_credentials");
        (await signUp()).ExpectError(HttpStatusCode.ServiceUnavailable, "too_many_accounts");
    }

    [Fact]
    public async Task An_authorization_past_MaxOpenHolds_is_too_many_holds_until_a_hold_is_released()
    {
        var (server, api) = await StartAsync("Engine:MaxOpenHolds=1");
        await using var _ = server;
        var (alice, bob) = await api.PairAsync();
        long hold = (await api.PayAsync(alice, bob.WalletId, 100, capture: false)).Long("id");
        await api.ExpectRejectedAsync(() => api.PostAsync("/v1/payments", alice.Token,
                new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", capture = false }),
            HttpStatusCode.ServiceUnavailable, "too_many_holds", alice.WalletId, bob.WalletId);
        (await api.PostAsync($"/v1/payments/{hold}/void", alice.Token, new { })).Expect(HttpStatusCode.OK);
        await api.PayAsync(alice, bob.WalletId, 100, capture: false);
    }

    [Fact]
    public async Task A_payment_past_MaxPayments_is_too_many_payments_under_rules_version_2()
    {
        // Rules version 3 and later (4 is the default) have no payment ceiling (ColdPaymentServerTests); version 2 keeps it.
        var (server, api) = await StartAsync("Engine:MaxPayments=4", "Engine:RulesVersion=2");
        await using var _ = server;
        var (alice, bob) = await api.PairAsync();
        for (int i = 0; i < 3; i++) await api.PayAsync(alice, bob.WalletId, 100);
        await api.ExpectRejectedAsync(() => api.PostAsync("/v1/payments", alice.Token,
                new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD" }),
            HttpStatusCode.ServiceUnavailable, "too_many_payments", alice.WalletId, bob.WalletId);
    }
}
