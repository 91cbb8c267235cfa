using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using C = RamPay.Contracts;

namespace RamPay.Server.Tests;

/// <summary>
/// The answers the web app reads through the contract types of RamPay.Contracts/WebAppContracts.cs are those types,
/// field for field: each is read strictly (a field the server writes and the type lacks fails, and so does one the type
/// requires and the server leaves out), from a real server process.
/// </summary>
public class WebAppContractTests
{

    private static readonly JsonSerializerOptions Strict = new(C.RamPayJsonContext.Default.Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    private static T Read<T>(ApiResponse response, HttpStatusCode status)
    {
        response.Expect(status);
        try
        {
            return JsonSerializer.Deserialize<T>(response.Raw, Strict)!;
        }
        catch (JsonException e)
        {
            throw new Xunit.Sdk.XunitException($"{response.Request}: not a {typeof(T).Name} of RamPay.Contracts: {e.Message}\n{response.Raw}");
        }
    }

    [Fact]
    public async Task Lookup_search_webhooks_rewards_and_analytics_answer_their_contract_types()
    {
        // Its own server: webhook URLs on 127.0.0.1 allowed (a closed port: deliveries fail, which is all this needs).
        await using var server = await ServerProcess.StartAsync("Webhooks:AllowPrivateNetworks=true", "Webhooks:RetryBaseMs=60000");
        var api = new Api(server);
        var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int closedPort = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var (alice, bob) = await api.PairAsync();
        string admin = await api.AdminTokenAsync();

        var payee = Read<C.Payee>(await api.GetAsync($"/v1/users/lookup?email={Uri.EscapeDataString(bob.Email)}", alice.Token), HttpStatusCode.OK);
        Assert.Equal(bob.WalletId, payee.AccountId);
        var users = Read<C.AdminUserPage>(await api.GetAsync($"/v1/admin/users?email={Uri.EscapeDataString(alice.Email)}", admin), HttpStatusCode.OK);
        Assert.Equal(alice.UserId, Assert.Single(users.Data).UserId);

        var created = Read<C.WebhookEndpointView>(await api.PostAsync("/v1/webhook_endpoints", alice.Token,
            new { url = $"http://127.0.0.1:{closedPort}/hook", enabled_events = new[] { "*" }, description = "contract" }, key: ""), HttpStatusCode.Created);
        Assert.StartsWith("whsec_", created.Secret, StringComparison.Ordinal);
        var list = Read<C.WebhookEndpointList>(await api.GetAsync("/v1/webhook_endpoints", alice.Token), HttpStatusCode.OK);
        Assert.Null(Assert.Single(list.Data).Secret);
        await api.DepositAsync(alice, 100);
        Read<C.WebhookDeliveryAttemptList>(await api.GetAsync($"/v1/webhook_endpoints/{created.Id}/deliveries", alice.Token), HttpStatusCode.OK);
        Read<C.AdminDeliveryPage>(await api.GetAsync("/v1/admin/webhook_deliveries?limit=5", admin), HttpStatusCode.OK);
        var deleted = Read<C.WebhookEndpointDeleted>(await api.SendAsync(HttpMethod.Delete, $"/v1/webhook_endpoints/{created.Id}", alice.Token), HttpStatusCode.OK);
        Assert.Equal((created.Id, true), (deleted.Id, deleted.Deleted));

        var rule = Read<C.RewardRuleView>(await api.SendAsync(HttpMethod.Post, "/v1/admin/reward_rules", admin,
            rawBody: JsonSerializer.Serialize(new C.RewardRuleRequest("contract cashback", 100, "USD", MaxPerPayment: 1_000, PayeeAccounts: [bob.WalletId]),
                C.RamPayJsonContext.Default.RewardRuleRequest)), HttpStatusCode.Created);
        var changed = Read<C.RewardRuleView>(await api.SendAsync(HttpMethod.Post, $"/v1/admin/reward_rules/{rule.Id}", admin,
            rawBody: JsonSerializer.Serialize(new C.RewardRuleRequest("contract cashback", 150, "USD", PayeeAccounts: [bob.WalletId]), C.RamPayJsonContext.Default.RewardRuleRequest)), HttpStatusCode.OK);
        Assert.Equal((150, 2, 2), (changed.PercentBps, changed.Version, changed.Versions!.Count));
        Assert.Contains(Read<C.RewardRuleList>(await api.GetAsync("/v1/admin/reward_rules", admin), HttpStatusCode.OK).Data, r => r.Id == rule.Id);
        Read<C.RewardRuleView>(await api.PostAsync($"/v1/admin/reward_rules/{rule.Id}/end", admin, new { }, key: ""), HttpStatusCode.OK);
        Read<C.RewardFundingList>(await api.GetAsync("/v1/admin/rewards/funding", admin), HttpStatusCode.OK);
        Read<C.RewardPage>(await api.GetAsync("/v1/rewards", alice.Token), HttpStatusCode.OK);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var analytics = Read<C.AnalyticsSeries>(await api.GetAsync($"/v1/admin/analytics?interval=hour&from={now - 86_400}&to={now + 3_600}", admin), HttpStatusCode.OK);
        Assert.Equal("hour", analytics.Interval);
    }
}
