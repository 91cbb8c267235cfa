using System.Net;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>
/// Issue 15's API additions (docs/api.md, "For the web app"): the payee lookup, history filters, the operators'
/// searches. On the fraud fixture (payments of 5,000 or more are held for review) so that held payments exist.
/// </summary>
public sealed class WebApiTests(FraudServerFixture fixture) : IClassFixture<FraudServerFixture>
{
    private readonly Api _api = fixture.Api;

    private static List<long> Ids(JsonNode page) => page["data"]!.AsArray().Select(p => p!.Long("id")).ToList();

    [Fact]
    public async Task Lookup_by_email_gives_only_the_wallet_account_id_and_name_in_any_case_of_the_email()
    {
        var (alice, bob) = await _api.PairAsync();
        var found = (await _api.GetAsync($"/v1/users/lookup?email={Uri.EscapeDataString(bob.Email.ToUpperInvariant())}", alice.Token)).Expect(HttpStatusCode.OK).AsObject();
        Assert.Equal(["account_id", "name"], found.Select(p => p.Key).Order().ToArray());
        Assert.Equal(bob.WalletId, found.Long("account_id"));
        Assert.Equal("Test User", found.Str("name"));

        (await _api.GetAsync("/v1/users/lookup?email=nobody-" + Guid.NewGuid().ToString("N") + "%40example.com", alice.Token)).ExpectError(HttpStatusCode.NotFound, "user_not_found");
        (await _api.GetAsync("/v1/users/lookup", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        (await _api.GetAsync("/v1/users/lookup?email=no-at-sign", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_email");
        (await _api.GetAsync($"/v1/users/lookup?email={Uri.EscapeDataString(bob.Email)}", null)).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task Lookups_are_limited_per_caller_hits_and_misses_alike_and_other_callers_are_not_affected()
    {
        var (alice, bob) = await _api.PairAsync();
        // The default burst is 10 (RamPay:Web:LookupBurst), refilled at 30 a minute: 10 quick lookups pass, then 429.
        int passed = 0;
        ApiResponse last;
        while (true)
        {
            string email = passed % 2 == 0 ? bob.Email : Api.NewEmail(); // misses cost the same as hits
            last = await _api.GetAsync($"/v1/users/lookup?email={Uri.EscapeDataString(email)}", alice.Token);
            if (last.Status == HttpStatusCode.TooManyRequests) break;
            Assert.True(last.Status is HttpStatusCode.OK or HttpStatusCode.NotFound, last.Raw);
            passed++;
            Assert.True(passed <= 11, "no limit after 11 lookups");
        }
        Assert.InRange(passed, 10, 11); // the bucket refills by one every 2 s: one more may slip in on a slow machine
        last.ExpectError(HttpStatusCode.TooManyRequests, "rate_limited");
        Assert.True(int.Parse(last.Header("Retry-After")!, System.Globalization.CultureInfo.InvariantCulture) >= 1);
        (await _api.GetAsync($"/v1/users/lookup?email={Uri.EscapeDataString(alice.Email)}", bob.Token)).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task History_filters_by_status_kind_and_time_and_pages_through_the_filtered_list()
    {
        var (alice, bob) = await _api.PairAsync(aliceDeposit: 4_000);
        long deposit = (await _api.HistoryAsync(alice.WalletId, alice.Token)).Single().Long("id");
        long t1 = (await _api.PayAsync(alice, bob.WalletId, 100)).Long("id");
        long auth = (await _api.PayAsync(alice, bob.WalletId, 200, capture: false)).Long("id");
        long t2 = (await _api.PayAsync(alice, bob.WalletId, 300)).Long("id");
        long refund = (await _api.PostAsync($"/v1/payments/{t1}/refunds", bob.Token, new { amount = 50 })).Expect(HttpStatusCode.Created).Long("id");
        string path = $"/v1/accounts/{alice.WalletId}/payments";

        Assert.Equal([refund, t2, auth, t1, deposit], Ids((await _api.GetAsync(path, alice.Token)).Expect(HttpStatusCode.OK)));
        Assert.Equal([auth], Ids((await _api.GetAsync(path + "?status=authorized", alice.Token)).Expect(HttpStatusCode.OK)));
        Assert.Equal([deposit], Ids((await _api.GetAsync(path + "?kind=deposit", alice.Token)).Expect(HttpStatusCode.OK)));
        Assert.Equal([refund, deposit], Ids((await _api.GetAsync(path + "?kind=refund,deposit", alice.Token)).Expect(HttpStatusCode.OK)));
        Assert.Equal([t2, t1], Ids((await _api.GetAsync(path + "?kind=transfer&status=posted", alice.Token)).Expect(HttpStatusCode.OK)));

        // Paging through a filtered list: one at a time, following next_after.
        var first = (await _api.GetAsync(path + "?status=posted&limit=2", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.Equal([refund, t2], Ids(first));
        Assert.True(first["has_more"]!.GetValue<bool>());
        var second = (await _api.GetAsync(path + $"?status=posted&limit=2&after={first.Long("next_after")}", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.Equal([t1, deposit], Ids(second));
        Assert.False(second["has_more"]!.GetValue<bool>());
        Assert.True(second.IsNull("next_after"));

        // Time: created at or after 'from', before 'to'.
        var all = (await _api.GetAsync(path, alice.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        string authAt = all.Single(p => p!.Long("id") == auth)!.Str("created_at");
        var since = Ids((await _api.GetAsync(path + "?from=" + Uri.EscapeDataString(authAt), alice.Token)).Expect(HttpStatusCode.OK));
        Assert.Contains(auth, since);
        Assert.DoesNotContain(deposit, since.Where(id => id < auth));
        var before = Ids((await _api.GetAsync(path + "?to=" + Uri.EscapeDataString(authAt), alice.Token)).Expect(HttpStatusCode.OK));
        Assert.DoesNotContain(auth, before);
        Assert.Contains(deposit, before);
        Assert.Empty(Ids((await _api.GetAsync(path + "?to=2000-01-01T00:00:00Z", alice.Token)).Expect(HttpStatusCode.OK)));

        foreach (string bad in new[] { "status=paid", "kind=loan", "from=yesterday", "to=2026-13-01T00:00:00Z", "from=2027-01-01T00:00:00Z&to=2026-01-01T00:00:00Z" })
            (await _api.GetAsync(path + "?" + bad, alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        (await _api.GetAsync(path + "?status=posted", bob.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Admin_user_search_finds_users_by_part_of_their_email_with_the_wallet_state_and_is_for_admins_only()
    {
        var (alice, _) = await _api.PairAsync();
        string admin = await _api.AdminTokenAsync();
        string part = alice.Email[2..12].ToUpperInvariant(); // a unique piece of the random email, in another case
        var page = (await _api.GetAsync($"/v1/admin/users?email={part}", admin)).Expect(HttpStatusCode.OK);
        var user = Assert.Single(page["data"]!.AsArray())!;
        Assert.Equal(alice.UserId, user.Long("user_id"));
        Assert.Equal(alice.Email, user.Str("email"));
        Assert.Equal(alice.WalletId, user.Long("wallet_account_id"));
        Assert.Equal("USD", user.Str("currency"));
        Assert.False(user["frozen"]!.GetValue<bool>());

        (await _api.PostAsync($"/v1/admin/accounts/{alice.WalletId}/freeze", admin, null)).Expect(HttpStatusCode.OK);
        user = (await _api.GetAsync($"/v1/admin/users?email={part}", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray().Single()!;
        Assert.True(user["frozen"]!.GetValue<bool>());

        // Paging over everyone: one user a page, the ids increasing, until has_more is false.
        var seen = new List<long>();
        string path = "/v1/admin/users?email=%40example.com&limit=1";
        for (int i = 0; i < 3; i++)
        {
            var p = (await _api.GetAsync(path, admin)).Expect(HttpStatusCode.OK);
            seen.Add(p["data"]!.AsArray().Single()!.Long("user_id"));
            path = $"/v1/admin/users?email=%40example.com&limit=1&after={p.Long("next_after")}";
        }
        Assert.Equal(seen.Order(), seen);
        Assert.Equal(3, seen.Distinct().Count());

        (await _api.GetAsync("/v1/admin/users?email=x", alice.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        (await _api.GetAsync("/v1/admin/users?limit=0", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
    }

    [Fact]
    public async Task Admin_payment_search_lists_the_held_payments_and_an_accounts_payments_by_status()
    {
        var (alice, bob) = await _api.PairAsync(aliceDeposit: 20_000);
        string admin = await _api.AdminTokenAsync();
        long held = (await _api.PayAsync(alice, bob.WalletId, FraudServerFixture.AmountThreshold)).Long("id");
        long small = (await _api.PayAsync(alice, bob.WalletId, 10)).Long("id");
        Assert.Equal("held_for_review", (await _api.PaymentAsync(held)).Str("status"));

        // The review queue over all accounts: newest first; ours is among them, and every one is held.
        var queue = (await _api.GetAsync("/v1/admin/payments?status=held_for_review&limit=100", admin)).Expect(HttpStatusCode.OK);
        var statuses = queue["data"]!.AsArray().Select(p => p!.Str("status")).Distinct().ToList();
        Assert.Equal(["held_for_review"], statuses);
        Assert.Contains(held, Ids(queue));
        var fraud = queue["data"]!.AsArray().First(p => p!.Long("id") == held)!["fraud"]!;
        Assert.Contains("amount_over_threshold", fraud["reasons"]!.AsArray().Select(r => r!.GetValue<string>()));

        Assert.Equal([held], Ids((await _api.GetAsync($"/v1/admin/payments?status=held_for_review&account={alice.WalletId}", admin)).Expect(HttpStatusCode.OK)));
        Assert.Equal([small], Ids((await _api.GetAsync($"/v1/admin/payments?status=posted&kind=transfer&account={bob.WalletId}", admin)).Expect(HttpStatusCode.OK)));

        // Approved, it leaves the queue.
        (await _api.PostAsync($"/v1/payments/{held}/review", admin, new { decision = "approve" })).Expect(HttpStatusCode.OK);
        Assert.DoesNotContain(held, Ids((await _api.GetAsync("/v1/admin/payments?status=held_for_review&limit=100", admin)).Expect(HttpStatusCode.OK)));

        // All payments, paged by id: the pages do not overlap and go down.
        var first = (await _api.GetAsync("/v1/admin/payments?limit=2", admin)).Expect(HttpStatusCode.OK);
        var second = (await _api.GetAsync($"/v1/admin/payments?limit=2&after={first.Long("next_after")}", admin)).Expect(HttpStatusCode.OK);
        var ids = Ids(first).Concat(Ids(second)).ToList();
        Assert.Equal(ids.OrderDescending(), ids);
        Assert.Equal(4, ids.Distinct().Count());

        (await _api.GetAsync("/v1/admin/payments?account=999999999", admin)).ExpectError(HttpStatusCode.NotFound, "account_not_found");
        (await _api.GetAsync("/v1/admin/payments?status=nope", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        (await _api.GetAsync("/v1/admin/payments?account=0", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        (await _api.GetAsync("/v1/admin/payments?status=held_for_review", alice.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
    }
}
