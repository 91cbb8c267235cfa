using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Bunit;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor.Services;
using RamPay.Web.Components;
using RamPay.Web.Pages;
using RamPay.Web.Services;

namespace RamPay.Web.Tests;

/// <summary>An HTTP server in a box: records every request and answers with the test's function.</summary>
public sealed class FakeApi : HttpMessageHandler
{
    public sealed record Seen(string Method, string Path, string? Key, string? Token, string? Body);

    public List<Seen> Requests { get; } = [];
    public Func<Seen, Task<HttpResponseMessage>> Answer { get; set; } = _ => Task.FromResult(Json(404, """{"error":{"code":"not_found","message":"no"}}"""));

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        string? body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        var seen = new Seen(request.Method.Method, request.RequestUri!.PathAndQuery, request.Headers.TryGetValues("Idempotency-Key", out var k) ? k.Single() : null,
            request.Headers.Authorization?.Parameter, body);
        lock (Requests) Requests.Add(seen);
        return await Answer(seen);
    }

    public static HttpResponseMessage Json(int status, string json) =>
        new((HttpStatusCode)status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    public static string Payment(long id, long amount, string status = "posted") =>
        $$"""{"id":{{id}},"kind":"transfer","status":"{{status}}","from_account":5,"to_account":6,"amount":{{amount}},"currency":"USD","captured":{{amount}},"refunded":0,"created_at":"2026-12-05T09:00:00.000Z","expires_at":null,"refund_of":null,"description":null,"fraud":null}""";

    public const string Account = """{"id":5,"owner_user_id":2,"currency":"USD","type":"wallet","frozen":false,"posted":10000,"pending":0,"available":10000}""";
}

/// <summary>The app's components with bunit: what they send and show, with the API faked at the HTTP level.</summary>
public sealed class ComponentTests : BunitContext, IAsyncLifetime
{
    // MudBlazor's services are only IAsyncDisposable: the container must be disposed asynchronously.
    Task IAsyncLifetime.InitializeAsync() => Task.CompletedTask;
    async Task IAsyncLifetime.DisposeAsync() => await base.DisposeAsync();

    private readonly FakeApi _api = new();

    public ComponentTests()
    {
        JSInterop.Mode = JSRuntimeMode.Loose;
        Services.AddMudServices();
        Services.AddScoped(_ => new HttpClient(_api) { BaseAddress = new Uri("http://rampay.test/") });
        Services.AddScoped<Session>();
        Services.AddScoped(sp => new ApiClient(sp.GetRequiredService<HttpClient>(), sp.GetRequiredService<Session>(),
            sp.GetRequiredService<Microsoft.AspNetCore.Components.NavigationManager>()) { RetryDelayMs = 1 });
    }

    private async Task LogInAsync(string token = "token-1", int expiresIn = 3600)
    {
        var session = Services.GetRequiredService<Session>();
        await session.SetTokensAsync(new TokenResponse(token, "Bearer", expiresIn, "refresh-1", 86_400));
        await session.SetUserAsync(TestUsers.Ada("user"));
    }

    /// <summary>The wallet, a payee found by email, and POST /v1/payments answered by <paramref name="pay"/>.</summary>
    private void Serve(Func<FakeApi.Seen, Task<HttpResponseMessage>> pay) => _api.Answer = seen => seen switch
    {
        { Method: "GET", Path: "/v1/accounts/5" } => Task.FromResult(FakeApi.Json(200, FakeApi.Account)),
        { Method: "GET" } when seen.Path.StartsWith("/v1/users/lookup", StringComparison.Ordinal) => Task.FromResult(FakeApi.Json(200, """{"account_id":6,"name":"Bob"}""")),
        { Method: "POST", Path: "/v1/payments" } => pay(seen),
        _ => Task.FromResult(FakeApi.Json(404, """{"error":{"code":"not_found","message":"no"}}""")),
    };

    private static void Fill(IRenderedComponent<Pay> cut, string email, string amount)
    {
        cut.Find("input[type=email]").Change(email);
        cut.FindAll("input").First(i => i.GetAttribute("inputmode") == "decimal").Change(amount);
    }

    private List<FakeApi.Seen> Payments() { lock (_api.Requests) return _api.Requests.Where(r => r is { Method: "POST", Path: "/v1/payments" }).ToList(); }

    [Fact]
    public async Task Pay_sends_the_amount_in_minor_units_to_the_account_found_by_email_and_shows_the_payment()
    {
        await LogInAsync();
        Serve(_ => Task.FromResult(FakeApi.Json(201, FakeApi.Payment(42, 1250))));
        var cut = Render<Pay>();
        cut.WaitForAssertion(() => Assert.Contains("100.00 USD", cut.Markup));
        Fill(cut, "bob@example.com", "12.50");
        cut.Find("form").Submit();
        cut.WaitForAssertion(() => Assert.Contains("#42", cut.Find("[data-testid=paid-id]").TextContent));
        var sent = JsonNode.Parse(Payments().Single().Body!)!;
        Assert.Equal(1250, sent["amount"]!.GetValue<long>());
        Assert.Equal(6, sent["to_account"]!.GetValue<long>());
        Assert.Equal(5, sent["from_account"]!.GetValue<long>());
        Assert.True(sent["capture"]!.GetValue<bool>());
        Assert.StartsWith("web-", Payments().Single().Key);
        Assert.Equal("token-1", Payments().Single().Token);
    }

    [Fact]
    public async Task A_second_submit_while_the_first_is_on_its_way_sends_nothing_more()
    {
        await LogInAsync();
        var answer = new TaskCompletionSource<HttpResponseMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        Serve(_ => answer.Task);
        var cut = Render<Pay>();
        cut.WaitForAssertion(() => Assert.Contains("100.00 USD", cut.Markup));
        Fill(cut, "bob@example.com", "5");
        cut.Find("form").Submit();
        cut.WaitForAssertion(() => Assert.Single(Payments()));
        cut.Find("form").Submit(); // the double click's second click
        cut.Find("form").Submit();
        answer.SetResult(FakeApi.Json(201, FakeApi.Payment(43, 500)));
        cut.WaitForAssertion(() => Assert.Contains("#43", cut.Find("[data-testid=paid-id]").TextContent));
        Assert.Single(Payments());
    }

    [Fact]
    public async Task A_payment_whose_answer_is_lost_is_sent_again_with_the_same_key_and_shows_the_first_result()
    {
        await LogInAsync();
        int calls = 0;
        Serve(_ => ++calls == 1 ? throw new HttpRequestException("connection reset") : Task.FromResult(FakeApi.Json(201, FakeApi.Payment(44, 700))));
        var cut = Render<Pay>();
        cut.WaitForAssertion(() => Assert.Contains("100.00 USD", cut.Markup));
        Fill(cut, "bob@example.com", "7");
        cut.Find("form").Submit();
        cut.WaitForAssertion(() => Assert.Contains("#44", cut.Find("[data-testid=paid-id]").TextContent));
        var sent = Payments();
        Assert.Equal(2, sent.Count);
        Assert.Equal(sent[0].Key, sent[1].Key);
        Assert.Equal(sent[0].Body, sent[1].Body);
    }

    [Fact]
    public async Task After_every_retry_failed_pressing_Pay_again_reuses_the_key_and_a_new_payment_gets_a_new_one()
    {
        await LogInAsync();
        bool down = true;
        Serve(_ => down ? throw new HttpRequestException("down") : Task.FromResult(FakeApi.Json(201, FakeApi.Payment(45, 300))));
        var cut = Render<Pay>();
        cut.WaitForAssertion(() => Assert.Contains("100.00 USD", cut.Markup));
        Fill(cut, "bob@example.com", "3");
        cut.Find("form").Submit();
        cut.WaitForAssertion(() => Assert.Contains("No answer from the server", cut.Markup));
        Assert.Equal(3, Payments().Count); // the first attempt and two retries
        down = false;
        cut.Find("form").Submit();
        cut.WaitForAssertion(() => Assert.Contains("#45", cut.Find("[data-testid=paid-id]").TextContent));
        Assert.Single(Payments().Select(p => p.Key).Distinct());

        Fill(cut, "bob@example.com", "4"); // a new action
        cut.Find("form").Submit();
        cut.WaitForAssertion(() => Assert.Equal(2, Payments().Select(p => p.Key).Distinct().Count()));
    }

    [Fact]
    public async Task An_overdraft_is_shown_in_words_next_to_the_amount()
    {
        await LogInAsync();
        Serve(_ => Task.FromResult(FakeApi.Json(422, """{"error":{"code":"insufficient_funds","message":"The paying account's available balance is lower than the amount.","request_id":"r1"}}""")));
        var cut = Render<Pay>();
        cut.WaitForAssertion(() => Assert.Contains("100.00 USD", cut.Markup));
        Fill(cut, "bob@example.com", "5000");
        cut.Find("form").Submit();
        cut.WaitForAssertion(() =>
        {
            // The message sits in the amount field's own control, with the field marked invalid.
            var amountControl = cut.FindAll(".mud-input-control").Single(c => c.TextContent.Contains("Amount (USD)", StringComparison.Ordinal));
            Assert.Contains("available balance is lower than the amount", amountControl.TextContent, StringComparison.Ordinal);
            Assert.Equal("true", amountControl.QuerySelector("input")!.GetAttribute("aria-invalid"));
        });
    }

    [Fact]
    public async Task An_amount_with_too_many_decimals_is_refused_before_anything_is_sent()
    {
        await LogInAsync();
        Serve(_ => Task.FromResult(FakeApi.Json(201, FakeApi.Payment(46, 1))));
        var cut = Render<Pay>();
        cut.WaitForAssertion(() => Assert.Contains("100.00 USD", cut.Markup));
        Fill(cut, "bob@example.com", "1.234");
        cut.Find("form").Submit();
        cut.WaitForAssertion(() => Assert.Contains("USD has 2 decimal places at most.", cut.Markup));
        Assert.Empty(Payments());
    }

    [Fact]
    public async Task An_expired_access_token_is_renewed_with_the_refresh_token_and_the_request_sent_again()
    {
        await LogInAsync(token: "old");
        _api.Answer = seen => Task.FromResult(seen switch
        {
            { Path: "/v1/auth/refresh" } => FakeApi.Json(200, """{"access_token":"new","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-2","refresh_expires_in":100}"""),
            { Token: "old" } => FakeApi.Json(401, """{"error":{"code":"unauthorized","message":"expired"}}"""),
            { Path: "/v1/accounts/5" } => FakeApi.Json(200, FakeApi.Account),
            _ => FakeApi.Json(200, """{"data":[],"has_more":false,"next_after":null}"""),
        });
        var cut = Render<Wallet>();
        cut.WaitForAssertion(() => Assert.Equal("100.00 USD", cut.Find("[data-testid=posted]").TextContent));
        var session = Services.GetRequiredService<Session>();
        Assert.Equal("new", session.AccessToken);
        Assert.Equal("refresh-2", session.RefreshToken);
        lock (_api.Requests) Assert.Single(_api.Requests, r => r.Path == "/v1/auth/refresh");
    }

    [Fact]
    public async Task When_the_refresh_token_is_refused_the_user_is_logged_out()
    {
        await LogInAsync(token: "old");
        _api.Answer = seen => Task.FromResult(seen.Path == "/v1/auth/refresh"
            ? FakeApi.Json(401, """{"error":{"code":"invalid_refresh_token","message":"log in again"}}""")
            : FakeApi.Json(401, """{"error":{"code":"unauthorized","message":"expired"}}"""));
        Render<Wallet>();
        var session = Services.GetRequiredService<Session>();
        await Task.Delay(50);
        Assert.False(session.IsLoggedIn);
        Assert.Contains("/login", Services.GetRequiredService<Microsoft.AspNetCore.Components.NavigationManager>().Uri, StringComparison.Ordinal);
    }

    [Fact]
    public void Balances_show_posted_pending_and_available_in_major_units_of_the_currency()
    {
        var cut = Render<Balances>(p => p.Add(b => b.Account, new Account(9, 3, "BHD", "wallet", false, 12_345, -1_005, 11_340, 0, 12_345, 1_005, 0, DateTimeOffset.UnixEpoch)));
        Assert.Equal("12.345 BHD", cut.Find("[data-testid=posted]").TextContent);
        Assert.Equal("-1.005 BHD", cut.Find("[data-testid=pending]").TextContent);
        Assert.Equal("11.340 BHD", cut.Find("[data-testid=available]").TextContent);
    }

    [Fact]
    public async Task Log_in_shows_wrong_credentials_next_to_the_password()
    {
        _api.Answer = _ => Task.FromResult(FakeApi.Json(401, """{"error":{"code":"invalid_credentials","message":"The email or the password is wrong."}}"""));
        var cut = Render<Login>();
        cut.Find("input[type=email]").Change("ada@example.com");
        cut.Find("input[type=password]").Change("wrong-password");
        cut.Find("form").Submit();
        cut.WaitForAssertion(() =>
        {
            var control = cut.FindAll(".mud-input-control").Single(c => c.QuerySelector("input[type=password]") is not null);
            Assert.Contains("The email or the password is wrong.", control.TextContent, StringComparison.Ordinal);
        });
        Assert.False(Services.GetRequiredService<Session>().IsLoggedIn);
        await Task.CompletedTask;
    }
}
