using System.Net.Http.Json;
using System.Text.Json;

namespace RamPay.Rewards;

/// <summary>
/// <see cref="IRewardCommands"/> for <c>rampay-worker rewards</c>: the server's service endpoints
/// (<c>POST /v1/service/rewards/issue</c> and <c>/reverse</c>), called with a <c>service</c> token, which may call those and
/// nothing else. The server sends the commands through its engine and answers once they are durable, so a worker that
/// commits its Kafka offsets after this returns never loses an effect, and one killed before that sends them again
/// (the ledger refuses a second reward).
/// </summary>
public sealed class HttpRewardCommands(HttpClient http) : IRewardCommands
{
    /// <summary>The most ids one call may carry (the server's <c>MaxIdsPerCall</c>): a larger batch goes in calls of this many, one after the other.</summary>
    public const int MaxIdsPerCall = 4_096;

    public async Task<IReadOnlyList<RewardOutcome>> IssueAsync(IReadOnlyList<long> paymentIds, CancellationToken cancellationToken)
    {
        var outcomes = new List<RewardOutcome>(paymentIds.Count);
        foreach (var chunk in paymentIds.Chunk(MaxIdsPerCall))
        {
            using var response = await http.PostAsJsonAsync("/v1/service/rewards/issue", new { payment_ids = chunk }, cancellationToken);
            outcomes.AddRange(await Outcomes(response, cancellationToken));
        }
        return outcomes;
    }

    public async Task<IReadOnlyList<RewardOutcome>> ReverseAsync(IReadOnlyList<(long PaymentId, long RefundId)> refunds, CancellationToken cancellationToken)
    {
        var outcomes = new List<RewardOutcome>(refunds.Count);
        foreach (var chunk in refunds.Chunk(MaxIdsPerCall))
        {
            var body = new { refunds = chunk.Select(r => new { payment_id = r.PaymentId, refund_id = r.RefundId }) };
            using var response = await http.PostAsJsonAsync("/v1/service/rewards/reverse", body, cancellationToken);
            outcomes.AddRange(await Outcomes(response, cancellationToken));
        }
        return outcomes;
    }

    public async Task<IReadOnlyList<RewardOutcome>> RetrySkippedAsync(IReadOnlyList<long> topUpIds, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync("/v1/service/rewards/retry", new { top_up_ids = topUpIds }, cancellationToken);
        return await Outcomes(response, cancellationToken);
    }

    private static async Task<IReadOnlyList<RewardOutcome>> Outcomes(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        // Anything but 200 throws: the worker does not commit the batch's offsets and sends it again.
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"the server answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(cancellationToken));
        return [.. doc.RootElement.GetProperty("outcomes").EnumerateArray().Select(o => RewardOutcomes.Parse(o.GetString() ?? ""))];
    }
}

/// <summary>The wire names of <see cref="RewardOutcome"/> (the service endpoints' answer).</summary>
public static class RewardOutcomes
{
    public static string Name(RewardOutcome o) => o switch
    {
        RewardOutcome.Issued => "issued",
        RewardOutcome.Skipped => "skipped",
        RewardOutcome.AlreadyRewarded => "already_rewarded",
        RewardOutcome.NotEligible => "not_eligible",
        RewardOutcome.Reversed => "reversed",
        _ => "refused",
    };

    public static RewardOutcome Parse(string s) => s switch
    {
        "issued" => RewardOutcome.Issued,
        "skipped" => RewardOutcome.Skipped,
        "already_rewarded" => RewardOutcome.AlreadyRewarded,
        "not_eligible" => RewardOutcome.NotEligible,
        "reversed" => RewardOutcome.Reversed,
        _ => RewardOutcome.Refused,
    };
}
