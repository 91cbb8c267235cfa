using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using RamPay.Server.Http;
using Xunit.Abstractions;

namespace RamPay.Server.Tests;

/// <summary>
/// Issue 11, item 9: a string that is not well-formed text (bytes that are not UTF-8, a lone surrogate) in any field of
/// any endpoint is a 4xx with an error code, never a 500 nor a 2xx, and changes nothing. The endpoints come from the
/// server's own OpenAPI document and from its route table (<see cref="Routes.Map"/>), so a new endpoint that is not in
/// <see cref="Endpoints"/> fails the sweep; the fields of each body come from its schema in the document.
/// </summary>
/// <remarks>
/// What each kind of case must answer, and why:
/// <list type="bullet">
/// <item>Bad text in the JSON body (any field, also a nested one, an unknown one, a property name, or the body's end):
/// <c>400 invalid_text</c>. Every request is otherwise valid and sent with a valid token and key, so that the bad
/// text is the only reason to refuse it.</item>
/// <item>A %-escape in the path or the query string that decodes to bad UTF-8: <c>400 invalid_text</c>, before routing
/// (an id that is not an integer would otherwise be 404) and before an endpoint ignores an unknown parameter.</item>
/// <item>A byte above 0x7F in the Idempotency-Key header: <c>400 invalid_idempotency_key</c> (keys are ASCII; this
/// includes well-formed UTF-8, which Kestrel refused before too).</item>
/// <item>Such a byte in the Authorization header: <c>401 unauthorized</c>. Authentication legitimately comes first:
/// a token is ASCII (base64url), so the header holds no token.</item>
/// <item>A raw (not %-escaped) byte above 0x7F in the request line: a bare 400 from Kestrel, the one case without a
/// JSON body. HTTP/1.1 requires an ASCII request target and Kestrel refuses the request while parsing it, before any
/// application code (or middleware) runs; there is no hook to shape that answer.</item>
/// </list>
/// "Changes nothing" is checked after every case: every account's balances, frozen flag and newest payment, the two
/// payments the sweep acts on, and that the next account id is still free (each sign-up opens a wallet).
/// </remarks>
public sealed class BadInputSweepTests(InProcessServerFixture fixture, ITestOutputHelper output) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    private enum Caller { Anonymous, User, Admin }

    /// <summary>What the document does not say: who calls the endpoint, the id that makes the request otherwise valid,
    /// a valid body (null: the endpoint reads none), whether it reads an Idempotency-Key, and its query parameters.</summary>
    private sealed record Endpoint(Caller Caller, Func<World, long>? Id = null, Func<World, JsonObject>? Body = null, bool ReadsKey = false, string[]? Query = null);

    private sealed record World(TestUser Alice, TestUser Bob, long AuthorizationId, long PaymentId, string AdminToken, long[] Accounts, long NextAccountId);

    private static JsonObject PaymentBody(World w) => new()
    {
        ["from_account"] = w.Alice.WalletId, ["to_account"] = w.Bob.WalletId, ["amount"] = 1, ["currency"] = "USD",
        ["description"] = "sweep", ["capture"] = false, ["hold_timeout_ms"] = 60_000, ["webhook_url"] = "https://example.com/hook",
    };

    private static JsonObject RuleBody() => new()
    {
        ["name"] = "sweep cashback", ["percent_bps"] = 100, ["currency"] = "USD", ["min_amount"] = 0, ["max_per_payment"] = 1_000,
        ["payee_accounts"] = new JsonArray(), ["starts_at"] = "2020-01-01T00:00:00Z", ["ends_at"] = 4_102_444_800,
    };

    /// <summary>Every endpoint of the server. A new endpoint needs a row here, or both tests fail.</summary>
    private static readonly Dictionary<string, Endpoint> Endpoints = new()
    {
        ["POST /v1/users"] = new(Caller.Anonymous, Body: _ => new JsonObject
        {
            ["email"] = Api.NewEmail(), ["password"] = Api.Password, ["name"] = "Sweep User", ["currency"] = "USD",
        }),
        ["POST /v1/auth/token"] = new(Caller.Anonymous, Body: w => new JsonObject { ["email"] = w.Alice.Email, ["password"] = w.Alice.Password }),
        // Not a refresh token the server issued: bad text must be refused before the lookup; good text is then a 401.
        ["POST /v1/auth/refresh"] = new(Caller.Anonymous, Body: _ => new JsonObject { ["refresh_token"] = "sweep-not-a-refresh-token" }),
        ["GET /v1/users/me"] = new(Caller.User),
        ["GET /v1/accounts/{id}"] = new(Caller.User, Id: w => w.Alice.WalletId),
        ["GET /v1/accounts/{id}/payments"] = new(Caller.User, Id: w => w.Alice.WalletId, Query: ["limit", "after", "status", "kind", "from", "to"]),
        // The web app's additions (issue 15): query parameters only.
        ["GET /v1/users/lookup"] = new(Caller.User, Query: ["email"]),
        ["GET /v1/admin/users"] = new(Caller.Admin, Query: ["email", "limit", "after"]),
        ["GET /v1/admin/payments"] = new(Caller.Admin, Query: ["status", "kind", "account", "from", "to", "limit", "after"]),
        ["GET /v1/admin/webhook_deliveries"] = new(Caller.Admin, Query: ["status", "limit", "starting_after"]),
        ["GET /v1/admin/latency"] = new(Caller.Admin, Query: ["minutes"]),
        ["POST /v1/accounts/{id}/deposits"] = new(Caller.User, Id: w => w.Alice.WalletId,
            Body: _ => new JsonObject { ["amount"] = 100, ["currency"] = "USD" }, ReadsKey: true),
        ["POST /v1/payments"] = new(Caller.User, Body: PaymentBody, ReadsKey: true),
        ["POST /v1/payments/batch"] = new(Caller.User, Body: w => new JsonObject { ["payments"] = new JsonArray(PaymentBody(w)) }, ReadsKey: true),
        ["GET /v1/payments/{id}"] = new(Caller.User, Id: w => w.PaymentId),
        ["POST /v1/payments/{id}/capture"] = new(Caller.User, Id: w => w.AuthorizationId, Body: _ => new JsonObject { ["amount"] = 1 }, ReadsKey: true),
        // Void reads an optional body ({} when empty), so bad text in one is refused as well.
        ["POST /v1/payments/{id}/void"] = new(Caller.User, Id: w => w.AuthorizationId, Body: _ => new JsonObject(), ReadsKey: true),
        ["POST /v1/payments/{id}/refunds"] = new(Caller.User, Id: w => w.PaymentId,
            Body: _ => new JsonObject { ["amount"] = 1, ["currency"] = "USD" }, ReadsKey: true),
        ["POST /v1/payments/{id}/review"] = new(Caller.Admin, Id: w => w.PaymentId, Body: _ => new JsonObject { ["decision"] = "approve" }, ReadsKey: true),
        // Freeze and unfreeze read no body: only their id, query and key are inputs.
        ["POST /v1/admin/accounts/{id}/freeze"] = new(Caller.Admin, Id: w => w.Bob.WalletId, ReadsKey: true),
        ["POST /v1/admin/accounts/{id}/unfreeze"] = new(Caller.Admin, Id: w => w.Bob.WalletId, ReadsKey: true),
        // The events API (issue 12): reads only; the id is an event id ("1-0-0"), any text routes.
        ["GET /v1/events"] = new(Caller.User, Query: ["limit", "starting_after", "ending_before", "type"]),
        ["GET /v1/events/{id}"] = new(Caller.User, Id: _ => 1),
        // Webhooks (issue 12): the id is an endpoint id ("we_..."); any text routes, an unknown one is 404 after the checks.
        ["POST /v1/webhook_endpoints"] = new(Caller.User, Body: _ => new JsonObject { ["url"] = "https://203.0.113.9/hook", ["enabled_events"] = new JsonArray("*") }),
        ["GET /v1/webhook_endpoints"] = new(Caller.User),
        ["GET /v1/webhook_endpoints/{id}"] = new(Caller.User, Id: _ => 1),
        ["POST /v1/webhook_endpoints/{id}"] = new(Caller.User, Id: _ => 1, Body: _ => new JsonObject { ["description"] = "x" }),
        ["DELETE /v1/webhook_endpoints/{id}"] = new(Caller.User, Id: _ => 1),
        ["POST /v1/webhook_endpoints/{id}/rotate_secret"] = new(Caller.User, Id: _ => 1, Body: _ => new JsonObject()),
        ["GET /v1/webhook_endpoints/{id}/deliveries"] = new(Caller.User, Id: _ => 1, Query: ["status", "limit"]),
        ["POST /v1/events/{id}/redeliver"] = new(Caller.User, Id: _ => 1, Body: _ => new JsonObject()),
        ["GET /v1/webhook_secret"] = new(Caller.User),
        ["POST /v1/webhook_secret/rotate"] = new(Caller.User, Body: _ => new JsonObject()),
        // Rewards and analytics (issue 13, src/RamPay.Server/Rewards). Rule bodies are valid rules; the service calls are
        // open to admins too. A rule change and end act on rule 1, which the first control case of the create row defines.
        ["POST /v1/admin/reward_rules"] = new(Caller.Admin, Body: _ => RuleBody(), ReadsKey: true),
        ["GET /v1/admin/reward_rules"] = new(Caller.Admin),
        ["GET /v1/admin/reward_rules/{id}"] = new(Caller.Admin, Id: _ => 1),
        ["POST /v1/admin/reward_rules/{id}"] = new(Caller.Admin, Id: _ => 1, Body: _ => RuleBody(), ReadsKey: true),
        ["POST /v1/admin/reward_rules/{id}/end"] = new(Caller.Admin, Id: _ => 1_000, Body: _ => new JsonObject(), ReadsKey: true),
        ["POST /v1/admin/rewards/top_up"] = new(Caller.Admin, Body: _ => new JsonObject { ["amount"] = 1, ["currency"] = "USD" }, ReadsKey: true),
        ["GET /v1/admin/rewards/funding"] = new(Caller.Admin),
        ["GET /v1/admin/rewards"] = new(Caller.Admin, Query: ["status", "limit", "after"]),
        ["POST /v1/admin/service_tokens"] = new(Caller.Admin, Body: _ => new JsonObject { ["name"] = "sweep" }),
        ["GET /v1/admin/analytics"] = new(Caller.Admin, Query: ["from", "to", "interval", "currency"]),
        ["GET /v1/rewards"] = new(Caller.User, Query: ["limit", "after"]),
        ["GET /v1/analytics/me"] = new(Caller.User, Query: ["from", "to", "interval"]),
        ["POST /v1/service/rewards/issue"] = new(Caller.Admin, Body: w => new JsonObject { ["payment_ids"] = new JsonArray(w.PaymentId) }),
        ["POST /v1/service/rewards/retry"] = new(Caller.Admin, Body: w => new JsonObject { ["top_up_ids"] = new JsonArray(w.PaymentId) }),
        ["POST /v1/service/rewards/reverse"] = new(Caller.Admin, Body: w => new JsonObject { ["refunds"] = new JsonArray(new JsonObject { ["payment_id"] = w.PaymentId, ["refund_id"] = w.PaymentId }) }),
        // Notifications (issue 12, src/RamPay.Server/Notifications). The sweep's server has no SMS gateway: a phone
        // change would be sms_unavailable, so the PATCH row changes a channel; the inbound SMS webhook reads a form
        // (no JSON body) and is 404 sms_disabled after the path and query checks.
        ["PATCH /v1/users/me"] = new(Caller.User, Body: _ => new JsonObject { ["notifications"] = new JsonObject { ["email"] = true } }),
        ["POST /v1/users/me/phone/verify"] = new(Caller.User, Body: _ => new JsonObject { ["code"] = "123456" }),
        ["GET /v1/notifications/unsubscribe"] = new(Caller.Anonymous, Query: ["token"]),
        ["POST /v1/notifications/unsubscribe"] = new(Caller.Anonymous, Query: ["token"]),
        ["POST /v1/notifications/sms/inbound"] = new(Caller.Anonymous),
        ["GET /v1/admin/notifications"] = new(Caller.Admin, Query: ["user", "channel", "status", "limit", "starting_after"]),
        ["GET /v1/service/notifications/recipients/{id}"] = new(Caller.Admin, Id: w => w.Alice.UserId),
        ["GET /health/live"] = new(Caller.Anonymous),
        ["GET /health/ready"] = new(Caller.Anonymous),
        ["GET /metrics"] = new(Caller.Anonymous),
        // Rotation reads no body (old keys keep verifying, so the sweep's tokens stay good).
        ["POST /v1/admin/auth/keys/rotate"] = new(Caller.Admin),
        // Last: a control case with well-formed text logs the caller out (its access token is then revoked).
        ["POST /v1/auth/logout"] = new(Caller.User, Body: _ => new JsonObject { ["refresh_token"] = "sweep-not-a-refresh-token" }),
    };

    /// <summary>Not well-formed text, as the bytes between the quotes of a JSON string.</summary>
    private static readonly (string Name, byte[] Bytes)[] BadStrings =
    [
        ("a lone high surrogate escape \\ud800", "\\ud800"u8.ToArray()),
        ("a lone low surrogate escape \\udfff", "x\\udfff"u8.ToArray()),
        ("a reversed surrogate pair \\udc00\\ud800", "\\udc00\\ud800"u8.ToArray()),
        ("a high surrogate escape before a letter \\ud83dA", "\\ud83dA"u8.ToArray()),
        ("a high surrogate escape before a BMP escape \\ud83d\\u0041", "\\ud83d\\u0041"u8.ToArray()),
        ("0xC3 0x28 (a lead byte without its continuation)", [0x61, 0xC3, 0x28]),
        ("0xFF", [0xFF]),
        ("the overlong 0xC0 0xAF", [0xC0, 0xAF]),
        ("the encoded surrogate 0xED 0xA0 0x80", [0xED, 0xA0, 0x80]),
        ("0xF4 0x90 0x80 0x80 (above U+10FFFF)", [0xF4, 0x90, 0x80, 0x80]),
        ("the truncated sequence 0xE2 0x82", [0x61, 0xE2, 0x82]),
    ];

    /// <summary>Well-formed text that is not ASCII: the control cases, which must not be refused as invalid_text.</summary>
    private static readonly (string Name, byte[] Bytes)[] GoodStrings =
    [
        ("raw UTF-8 é😀", Encoding.UTF8.GetBytes("é😀")),
        ("the escapes \\u00e9\\ud83d\\ude00", "\\u00e9\\ud83d\\ude00"u8.ToArray()),
    ];

    private static readonly string[] BadEscapes = ["%C3%28", "%FF", "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "%E2%82"];

    private static readonly byte[][] BadHeaderBytes = [[0xFF], [0xC3, 0x28], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xC3, 0xA9]];

    private sealed record Case(string Endpoint, string What, byte[] Request, int Status, string? Code);

    private const string Marker = "@@SWEEP@@";

    // ---- the tests ----------------------------------------------------------------------------------------------

    [Fact]
    public async Task The_sweep_table_holds_every_endpoint_of_the_OpenAPI_document_and_of_the_route_table()
    {
        var documented = (await DocumentAsync())["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject().Select(o => o.Key.ToUpperInvariant() + " " + p.Key)).ToHashSet();
        var mapped = await MappedRoutesAsync();
        Assert.Contains("POST /v1/payments", documented);
        Assert.Contains("GET /health/live", mapped); // mapped without OpenAPI metadata: the route table is needed too
        var all = documented.Union(mapped).ToHashSet();
        var missing = all.Where(e => !Endpoints.ContainsKey(e)).Order().ToList();
        Assert.True(missing.Count == 0, $"endpoints the bad-input sweep does not cover (add them to {nameof(BadInputSweepTests)}.{nameof(Endpoints)}): {string.Join(", ", missing)}");
        var stale = Endpoints.Keys.Where(e => !all.Contains(e)).Order().ToList();
        Assert.True(stale.Count == 0, $"rows of the sweep table that are no endpoint of the server: {string.Join(", ", stale)}");
    }

    [Fact]
    public async Task Bad_text_in_any_input_of_any_endpoint_is_a_4xx_with_a_code_and_changes_nothing()
    {
        var document = await DocumentAsync();
        var operations = Operations(document);
        foreach (string route in await MappedRoutesAsync()) operations.TryAdd(route, null);
        var world = await WorldAsync();

        var failures = new List<string>();
        var cases = new List<Case>();
        foreach (var (key, operation) in operations.OrderBy(o => o.Key, StringComparer.Ordinal))
        {
            if (!Endpoints.TryGetValue(key, out var endpoint)) failures.Add($"{key}: not in the sweep table");
            else cases.AddRange(CasesFor(key, endpoint, operation, document, world));
        }

        var tally = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        string ledger = await LedgerAsync(world);
        foreach (var c in cases)
        {
            var response = await RawHttp.SendAsync(fixture.Server.HttpBaseAddress, c.Request);
            string? problem = Problem(c, response);
            string after = await LedgerAsync(world);
            bool changed = after != ledger;
            if (changed)
            {
                problem = (problem is null ? "" : problem + "; ") + "the ledger changed";
                ledger = after;
            }
            if (problem is not null)
            {
                failures.Add($"{c.Endpoint} with {c.What}: {problem}");
                string kind = $"answered {response.Status}{(changed ? ", ledger changed" : "")}";
                tally[kind] = tally.GetValueOrDefault(kind) + 1;
            }
        }
        output.WriteLine($"{cases.Count} cases over {operations.Count} endpoints in {clock.Elapsed.TotalSeconds:0.0} s, {failures.Count} failed");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases failed ({string.Join(", ", tally.Select(t => $"{t.Value} {t.Key}"))}):\n" +
            string.Join("\n", failures.Where(f => f.Contains("got 500", StringComparison.Ordinal)).Concat(failures).Distinct().Take(80)));
        Assert.True(cases.Count > 400, $"only {cases.Count} cases: the sweep did not run");

        // Controls, last since they may change the ledger: well-formed text that is not ASCII is not refused as bad text.
        int controls = 0;
        foreach (var (key, operation) in operations)
        {
            var endpoint = Endpoints[key];
            if (endpoint.Body is null || operation is null) continue;
            foreach (var (path, isString) in BodyFields(document, operation))
            {
                if (!isString) continue;
                foreach (var (name, bytes) in GoodStrings)
                {
                    var response = await RawHttp.SendAsync(fixture.Server.HttpBaseAddress, Request(key, endpoint, world, Inject(endpoint.Body(world), path, bytes)));
                    controls++;
                    Assert.True(response.Status is >= 200 and < 500 && response.ErrorCode != RequestText.Code,
                        $"{key} with {name} in '{string.Join(".", path)}' (well-formed text): {response.Status} {response.Text}");
                }
            }
        }
        Assert.True(controls > 20, $"only {controls} control cases");
    }

    // ---- the cases ----------------------------------------------------------------------------------------------

    private static IEnumerable<Case> CasesFor(string key, Endpoint endpoint, JsonObject? operation, JsonObject document, World w)
    {
        string template = key[(key.IndexOf(' ') + 1)..];

        if (endpoint.Body is not null)
        {
            var fields = operation is null ? [] : BodyFields(document, operation);
            fields.Add((["unknown_field"], false));
            foreach (var (path, _) in fields)
                foreach (var (name, bytes) in BadStrings)
                    yield return Expect(key, $"{name} in '{string.Join(".", path)}'", Request(key, endpoint, w, Inject(endpoint.Body(w), path, bytes)), 400, RequestText.Code);
            foreach (var (name, bytes) in BadStrings)
            {
                yield return Expect(key, $"{name} in a property name", Request(key, endpoint, w, InjectName(endpoint.Body(w), bytes)), 400, RequestText.Code);
            }
            byte[] valid = Serialize(endpoint.Body(w));
            // Cut short inside a multi-byte sequence, inside a string and after the object.
            byte[] open = [.. valid[..^1], .. (valid.Length > 2 ? ","u8 : ""u8), .. "\"cut\":\"a"u8, 0xE2, 0x82];
            yield return Expect(key, "a body that ends inside a string with 0xE2 0x82", Request(key, endpoint, w, open), 400, RequestText.Code);
            yield return Expect(key, "a body that ends with 0xE2 0x82 after the object", Request(key, endpoint, w, [.. valid, 0xE2, 0x82]), 400, RequestText.Code);
            yield return Expect(key, "a body that ends with 0xFF after the object", Request(key, endpoint, w, [.. valid, 0xFF]), 400, RequestText.Code);
        }

        if (endpoint.ReadsKey)
        {
            foreach (var bytes in BadHeaderBytes)
                yield return Expect(key, $"Idempotency-Key ending in {Hex(bytes)}", Request(key, endpoint, w, Body(endpoint, w), key: [.. Encoding.ASCII.GetBytes(Api.NewKey()), .. bytes]), 400, "invalid_idempotency_key");
            yield return Expect(key, "Idempotency-Key starting with 0xFF", Request(key, endpoint, w, Body(endpoint, w), key: [0xFF, .. Encoding.ASCII.GetBytes(Api.NewKey())]), 400, "invalid_idempotency_key");
        }

        if (endpoint.Caller != Caller.Anonymous)
        {
            foreach (var bytes in BadHeaderBytes.Take(2))
            {
                yield return Expect(key, $"a bearer token ending in {Hex(bytes)}", Request(key, endpoint, w, Body(endpoint, w), authorization: [.. TokenBytes(endpoint, w), .. bytes]), 401, "unauthorized");
                yield return Expect(key, $"a bearer token starting with {Hex(bytes)}", Request(key, endpoint, w, Body(endpoint, w), authorization: [.. bytes, .. TokenBytes(endpoint, w)]), 401, "unauthorized");
            }
        }

        var parameters = Regex.Matches(template, @"\{(\w+)\}").Select(m => m.Groups[1].Value).ToList();
        foreach (string escape in BadEscapes)
        {
            foreach (string parameter in parameters)
                yield return Expect(key, $"{escape} as the route parameter '{parameter}'", Request(key, endpoint, w, Body(endpoint, w), target: Target(template, w, endpoint, idText: escape)), 400, RequestText.Code);
            yield return Expect(key, $"{escape} at the end of the path", Request(key, endpoint, w, Body(endpoint, w), target: Target(template, w, endpoint) + escape), 400, RequestText.Code);
            foreach (string parameter in (endpoint.Query ?? []).Append("unknown"))
                yield return Expect(key, $"{escape} in the query parameter '{parameter}'", Request(key, endpoint, w, Body(endpoint, w), target: $"{Target(template, w, endpoint)}?{parameter}=1{escape}"), 400, RequestText.Code);
            yield return Expect(key, $"{escape} as a query parameter's name", Request(key, endpoint, w, Body(endpoint, w), target: $"{Target(template, w, endpoint)}?{escape}=1"), 400, RequestText.Code);
        }

        // Raw bytes in the request line: refused by Kestrel's HTTP parser (see the remarks), so no code is asked for.
        string plain = Target(template, w, endpoint);
        yield return Expect(key, "a raw 0xFF in the path", Request(key, endpoint, w, Body(endpoint, w), rawTarget: [.. Encoding.ASCII.GetBytes(plain), 0xFF]), 400, null);
        yield return Expect(key, "raw 0xC3 0x28 in the query", Request(key, endpoint, w, Body(endpoint, w), rawTarget: [.. Encoding.ASCII.GetBytes(plain + "?x="), 0xC3, 0x28]), 400, null);
    }

    private static Case Expect(string endpoint, string what, byte[] request, int status, string? code) => new(endpoint, what, request, status, code);

    private static byte[]? Body(Endpoint endpoint, World w) => endpoint.Body is null ? null : Serialize(endpoint.Body(w));

    private static string Hex(byte[] bytes) => string.Join(" ", bytes.Select(b => $"0x{b:X2}"));

    private static byte[] TokenBytes(Endpoint endpoint, World w) =>
        Encoding.ASCII.GetBytes(endpoint.Caller == Caller.Admin ? w.AdminToken : w.Alice.Token);

    private static string Target(string template, World w, Endpoint endpoint, string? idText = null) =>
        Regex.Replace(template, @"\{\w+\}", _ => idText ?? endpoint.Id!(w).Inv());

    /// <summary>The request, valid except for what the arguments put in: a fresh key, the caller's token, the body.</summary>
    private static byte[] Request(string operation, Endpoint endpoint, World w, byte[]? body, byte[]? key = null, byte[]? authorization = null,
        string? target = null, byte[]? rawTarget = null)
    {
        string method = operation[..operation.IndexOf(' ')];
        string template = operation[(operation.IndexOf(' ') + 1)..];
        var headers = new List<(string, byte[])>();
        if (endpoint.Caller != Caller.Anonymous) headers.Add(("Authorization", [.. "Bearer "u8, .. authorization ?? TokenBytes(endpoint, w)]));
        if (endpoint.ReadsKey) headers.Add(("Idempotency-Key", key ?? Encoding.ASCII.GetBytes(Api.NewKey())));
        byte[] line = rawTarget ?? Encoding.ASCII.GetBytes(target ?? Target(template, w, endpoint));
        return RawHttp.Build(method, line, headers, body);
    }

    /// <summary>What is wrong with the answer to a case, or null.</summary>
    private static string? Problem(Case c, RawResponse response)
    {
        string got = $"got {response.Status} '{Shorten(response.Text)}'";
        if (response.Status != c.Status) return $"expected {c.Status} {c.Code ?? ""}, {got}";
        if (c.Code is null) return response.Body.Length == 0 || response.ErrorCode is not null ? null : $"a 400 body that is neither empty nor an error: {got}";
        if (response.ErrorCode != c.Code) return $"expected the code {c.Code}, {got}";
        if (string.IsNullOrEmpty(response.ErrorMessage)) return $"the error has no message: {got}";
        return null;
    }

    private static string Shorten(string text) => text.Length > 300 ? text[..300] + "..." : text;

    // ---- bodies -------------------------------------------------------------------------------------------------

    private static byte[] Serialize(JsonObject body) => JsonSerializer.SerializeToUtf8Bytes(body);

    /// <summary>The body with the string value at <paramref name="path"/> made of <paramref name="bytes"/> (set, or added).</summary>
    private static byte[] Inject(JsonObject body, object[] path, byte[] bytes)
    {
        JsonNode parent = body;
        for (int i = 0; i < path.Length - 1; i++) parent = path[i] is int index ? parent[index]! : parent[(string)path[i]]!;
        if (path[^1] is int last) parent[last] = Marker; else parent[(string)path[^1]] = Marker;
        return Replace(Serialize(body), "\"" + Marker + "\"", [(byte)'"', .. bytes, (byte)'"']);
    }

    /// <summary>The body with one more property whose name is made of <paramref name="bytes"/>.</summary>
    private static byte[] InjectName(JsonObject body, byte[] bytes)
    {
        body[Marker] = 1;
        return Replace(Serialize(body), "\"" + Marker + "\"", [(byte)'"', .. bytes, (byte)'"']);
    }

    private static byte[] Replace(byte[] json, string marker, byte[] with)
    {
        int at = json.AsSpan().IndexOf(Encoding.ASCII.GetBytes(marker));
        Assert.True(at >= 0, $"no {marker} in {Encoding.UTF8.GetString(json)}");
        return [.. json[..at], .. with, .. json[(at + marker.Length)..]];
    }

    /// <summary>
    /// The fields of an operation's JSON body from its schema in the document, as paths (<c>["payments", 0, "amount"]</c>),
    /// each with whether the schema says it is a string. An array of objects gives its own path and its first item's fields.
    /// </summary>
    private static List<(object[] Path, bool IsString)> BodyFields(JsonObject document, JsonObject operation)
    {
        var fields = new List<(object[], bool)>();
        if (operation["requestBody"]?["content"]?["application/json"]?["schema"] is JsonObject schema) AddFields(document, schema, [], fields);
        return fields;
    }

    private static void AddFields(JsonObject document, JsonObject schema, object[] prefix, List<(object[], bool)> fields)
    {
        schema = Resolve(document, schema);
        if (schema["properties"] is not JsonObject properties) return;
        foreach (var (name, property) in properties)
        {
            var p = Resolve(document, property!.AsObject());
            object[] path = [.. prefix, name];
            fields.Add((path, p["type"]?.GetValue<string>() == "string"));
            if (p["type"]?.GetValue<string>() == "array" && p["items"] is JsonObject items) AddFields(document, items, [.. path, 0], fields);
            else if (p["properties"] is not null) AddFields(document, p, path, fields);
        }
    }

    private static JsonObject Resolve(JsonObject document, JsonObject schema)
    {
        if (schema["$ref"]?.GetValue<string>() is not { } reference) return schema;
        JsonNode node = document;
        foreach (string part in reference.TrimStart('#', '/').Split('/')) node = node[part]!;
        return node.AsObject();
    }

    // ---- the server's endpoints, the world and the ledger -------------------------------------------------------

    private async Task<JsonObject> DocumentAsync() =>
        (await _api.GetAsync("/swagger/v1/swagger.json", null)).Expect(HttpStatusCode.OK).AsObject();

    /// <summary>"METHOD /path/{param}" of every operation in the document, with the operation.</summary>
    private static Dictionary<string, JsonObject?> Operations(JsonObject document)
    {
        var operations = new Dictionary<string, JsonObject?>();
        foreach (var (path, item) in document["paths"]!.AsObject())
            foreach (var (method, operation) in item!.AsObject())
                operations[method.ToUpperInvariant() + " " + path] = operation!.AsObject();
        return operations;
    }

    /// <summary>
    /// The application's own route table: the routes <see cref="Routes.Map"/> maps, read from a WebApplication that is
    /// built but never started (the handlers are not called, so no Api is needed). The fallback (404) is left out.
    /// </summary>
    private static async Task<HashSet<string>> MappedRoutesAsync()
    {
        // The server as Program composes it (not started): every endpoint it maps, /metrics included.
        string data = Directory.CreateTempSubdirectory("rampay-sweep-routes-").FullName;
        try
        {
            await using var app = Program.Compose(["--data", data, "--http-port", "0", "--tcp-port", "-1"], out int refused)
                ?? throw new InvalidOperationException($"the server refused its settings (exit {refused})");
            return RoutesOf(app);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static HashSet<string> RoutesOf(WebApplication app)
    {
        var routes = new HashSet<string>();
        foreach (var endpoint in ((IEndpointRouteBuilder)app).DataSources.SelectMany(s => s.Endpoints).OfType<RouteEndpoint>())
        {
            string? pattern = endpoint.RoutePattern.RawText;
            if (pattern is null || pattern.Contains("{*", StringComparison.Ordinal)) continue;
            if (endpoint.Metadata.GetMetadata<RamPay.Server.Hosting.WebApp.Asset>() is not null) continue; // the web app's files (issue 15)
            pattern = "/" + Regex.Replace(pattern, @"\{(\w+):[^}]*\}", "{$1}").TrimStart('/');
            // An endpoint without method metadata (the Prometheus exporter's /metrics) answers any method: GET is the one swept.
            foreach (string method in endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"]) routes.Add(method + " " + pattern);
        }
        return routes;
    }

    /// <summary>Alice (funded) and Bob, an authorization and a settled payment from Alice to Bob.</summary>
    private async Task<World> WorldAsync()
    {
        var (alice, bob) = await _api.PairAsync(aliceDeposit: 10_000);
        long authorization = (await _api.PayAsync(alice, bob.WalletId, 500, capture: false)).Long("id");
        long payment = (await _api.PayAsync(alice, bob.WalletId, 700)).Long("id");
        string admin = await _api.AdminTokenAsync();
        long last = Math.Max(alice.WalletId, bob.WalletId);
        (await _api.GetAsync($"/v1/accounts/{(last + 1).Inv()}", admin)).ExpectError(HttpStatusCode.NotFound, "account_not_found");
        return new World(alice, bob, authorization, payment, admin, [.. Enumerable.Range(1, (int)last).Select(i => (long)i)], last + 1);
    }

    /// <summary>
    /// What a refused request must leave as it was: every account (balances, frozen, its newest payment), the two
    /// payments the sweep captures, voids, refunds and reviews, and the next account id still free (no sign-up).
    /// </summary>
    private async Task<string> LedgerAsync(World w)
    {
        var state = new StringBuilder();
        foreach (long id in w.Accounts)
        {
            state.Append((await _api.AccountAsync(id, w.AdminToken)).ToJsonString());
            state.Append((await _api.GetAsync($"/v1/accounts/{id.Inv()}/payments?limit=1", w.AdminToken)).Expect(HttpStatusCode.OK)["data"]!.ToJsonString());
        }
        state.Append((await _api.PaymentAsync(w.AuthorizationId, w.AdminToken)).ToJsonString());
        state.Append((await _api.PaymentAsync(w.PaymentId, w.AdminToken)).ToJsonString());
        var next = await _api.GetAsync($"/v1/accounts/{w.NextAccountId.Inv()}", w.AdminToken);
        state.Append(next.Status == HttpStatusCode.NotFound ? "" : $"account {w.NextAccountId} exists");
        return state.ToString();
    }
}

/// <summary><see cref="RequestText"/> in-process: what it refuses, what it lets through, and how it names the field.</summary>
public sealed class RequestTextTests
{
    private static ApiError? Refusal(byte[] body)
    {
        try
        {
            RequestText.CheckUtf8(body);
            RequestText.CheckEscapes(body);
            return null;
        }
        catch (ApiError e)
        {
            return e;
        }
    }

    [Theory]
    [InlineData("""{"a":"plain"}""")]
    [InlineData("""{"a":"é😀 €"}""")]
    [InlineData("""{"a":"\ud83d\ude00 \u00e9 \u20ac"}""")]
    [InlineData("""{"a":"\\ud800 is an escaped backslash, then text"}""")]
    [InlineData("""{"a":"\"quoted\" \n \\"}""")]
    [InlineData("""{"\ud83d\ude00":["\ud83d\ude00", {"b": "\uFFFD"}]}""")]
    [InlineData("""{"a":"\\\\ud800 two escaped backslashes", "b":"\uD83D\uDE00 upper case"}""")]
    public void Well_formed_text_passes(string json) => Assert.Null(Refusal(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void A_byte_order_mark_passes() => Assert.Null(Refusal([0xEF, 0xBB, 0xBF, .. """{"a":"b"}"""u8]));

    [Theory]
    [InlineData("""{"payments":[{"a":1},{"description":"\ud800"}]}""", "'payments[1].description' is not valid text", "surrogate")]
    [InlineData("""{"a":{"b":["ok","x\udfff"]}}""", "'a.b[1]' is not valid text", "surrogate")]
    [InlineData("""{"name":"ok","x\ud800":1}""", "A property name in the body is not valid text", "surrogate")]
    [InlineData("""{"payments":[{"\udc00\ud800":1}]}""", "A property name in 'payments[0]' is not valid text", "surrogate")]
    [InlineData("""{"a":"ok","b":"\\\ud800"}""", "'b' is not valid text", "surrogate")]
    [InlineData("""{"a":"\ud800\\udc00"}""", "'a' is not valid text", "surrogate")]
    [InlineData("""{"a":"\uDBFF\uDBFF\uDC00"}""", "'a' is not valid text", "surrogate")]
    public void A_lone_surrogate_escape_is_invalid_text_naming_the_field(string json, string names, string says)
    {
        var refusal = Refusal(Encoding.UTF8.GetBytes(json));
        Assert.NotNull(refusal);
        Assert.Equal((400, RequestText.Code), (refusal.Status, refusal.Code));
        Assert.StartsWith(names, refusal.Message, StringComparison.Ordinal);
        Assert.Contains(says, refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bytes_that_are_not_utf8_are_invalid_text_naming_the_field_and_the_offset()
    {
        byte[] body = [.. """{"email":"a@b.c","name":"x"""u8, 0xC3, 0x28, .. "\"}"u8];
        var refusal = Refusal(body)!;
        Assert.Equal(RequestText.Code, refusal.Code);
        Assert.StartsWith("'name' is not valid text: byte 26 of the body (0xC3)", refusal.Message, StringComparison.Ordinal);

        refusal = Refusal([.. """{"payments":[{"description":"ok"},{"descri"""u8, 0xFF, .. "ption\":1}]}"u8])!;
        Assert.StartsWith("A property name in 'payments[1]' is not valid text", refusal.Message, StringComparison.Ordinal);

        // After the object, or cut short inside a string: not JSON either, so the body is named.
        refusal = Refusal([.. """{"a":"b"}"""u8, 0xE2, 0x82])!;
        Assert.StartsWith("The request body is not valid text: byte 9 of the body (0xE2)", refusal.Message, StringComparison.Ordinal);
        refusal = Refusal([.. """{"a":"b"""u8, 0xE2, 0x82])!;
        Assert.StartsWith("The request body is not valid text", refusal.Message, StringComparison.Ordinal);
    }

    private static ApiError? TargetRefusal(string rawTarget)
    {
        var ctx = new DefaultHttpContext();
        ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()!.RawTarget = rawTarget;
        try
        {
            RequestText.CheckTarget(ctx);
            return null;
        }
        catch (ApiError e)
        {
            return e;
        }
    }

    [Theory]
    [InlineData("/v1/accounts/1/payments?limit=10&after=3")]
    [InlineData("/v1/caf%C3%A9?q=%F0%9F%98%80&r=%e2%82%ac")]
    [InlineData("/v1/x%2?y=%zz&z=%")] // not escapes: they stay themselves, as ASP.NET leaves them
    [InlineData("/v1/x%25FF")]        // an escaped '%' followed by "FF"
    public void A_target_of_well_formed_text_passes(string target) => Assert.Null(TargetRefusal(target));

    [Theory]
    [InlineData("/v1/accounts/%C3%28", "The request path")]
    [InlineData("/v1/accounts/%ED%A0%80/payments", "The request path")]
    [InlineData("/v1/accounts/1/payments?limit=10&after=%FF", "The query parameter 'after'")]
    [InlineData("/v1/users/me?%C0%AF=1", "The query parameter name '%C0%AF'")]
    [InlineData("/v1/users/me?x=%E2%82", "The query parameter 'x'")]
    public void A_target_whose_escapes_are_not_utf8_is_invalid_text(string target, string names)
    {
        var refusal = TargetRefusal(target);
        Assert.NotNull(refusal);
        Assert.Equal((400, RequestText.Code), (refusal.Status, refusal.Code));
        Assert.StartsWith(names, refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Only_the_headers_an_endpoint_reads_as_text_are_decoded_byte_for_byte()
    {
        Assert.Equal(Encoding.Latin1, RequestText.HeaderEncoding("Idempotency-Key"));
        Assert.Equal(Encoding.Latin1, RequestText.HeaderEncoding("idempotency-key"));
        Assert.Equal(Encoding.Latin1, RequestText.HeaderEncoding("Authorization"));
        Assert.Null(RequestText.HeaderEncoding("Content-Type"));
        Assert.True(RequestText.IsAscii("k-123 abc"));
        Assert.False(RequestText.IsAscii("k-\u00ff"));
    }
}
