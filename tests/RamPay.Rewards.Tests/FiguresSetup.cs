using System.Net;
using RamPay.Server.Tests;

namespace RamPay.Rewards.Tests;

/// <summary>
/// What every rewards figure starts from (RewardsFigures, RewardsWorkerFigures, ConsumerCatchUpFigures, WorkerCostFigures):
/// an admin, a rewards account topped up with 10,000,000.00, one 1 % rule in USD, four payers with 1,000,000.00 each
/// and one payee (another user, so every transfer between them is eligible).
/// </summary>
internal sealed record FiguresSetup(Api Api, string Admin, List<TestUser> Payers, TestUser Payee)
{
    public static async Task<FiguresSetup> StartAsync(ServerProcess server)
    {
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 1_000_000_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        (await api.PostAsync("/v1/admin/reward_rules", admin, new { name = "one percent", percent_bps = 100, currency = "USD" })).Expect(HttpStatusCode.Created);
        var payers = new List<TestUser>();
        for (int i = 0; i < 4; i++) payers.Add(await api.SignUpAsync(deposit: 100_000_000));
        return new FiguresSetup(api, admin, payers, await api.SignUpAsync());
    }
}
