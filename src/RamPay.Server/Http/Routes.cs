using C = RamPay.Contracts;

namespace RamPay.Server.Http;

/// <summary>
/// The JSON body an endpoint reads, for the OpenAPI document only. Not ASP.NET's Accepts metadata: that would make
/// routing refuse a request whose Content-Type is missing or different, and the API reads any body as JSON.
/// </summary>
public sealed record JsonRequestBody(Type Type);

/// <summary>Puts <see cref="JsonRequestBody"/> into the OpenAPI operation.</summary>
public sealed class JsonRequestBodyFilter : Swashbuckle.AspNetCore.SwaggerGen.IOperationFilter
{
    public void Apply(Microsoft.OpenApi.OpenApiOperation operation, Swashbuckle.AspNetCore.SwaggerGen.OperationFilterContext context)
    {
        var body = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<JsonRequestBody>().FirstOrDefault();
        if (body is null) return;
        var schema = context.SchemaGenerator.GenerateSchema(body.Type, context.SchemaRepository);
        operation.RequestBody = new Microsoft.OpenApi.OpenApiRequestBody
        {
            Required = true,
            Content = new Dictionary<string, Microsoft.OpenApi.OpenApiMediaType> { ["application/json"] = new() { Schema = schema } },
        };
    }
}

/// <summary>The route table of docs/api.md, with the metadata the OpenAPI document shows.</summary>
public static class Routes
{
    /// <summary>As a Delegate rather than a RequestDelegate, so the route gets a builder that takes OpenAPI metadata.</summary>
    private static Delegate H(Func<HttpContext, Task> handler) => handler;

    /// <summary>
    /// Maps the endpoints. Every /v1 endpoint goes through the per-client rate limit; the anonymous ones (sign-up,
    /// log-in, refresh) sit on <c>v1</c> itself, a user's endpoints in a group that requires the <c>user</c> policy
    /// (users and admins), administration in one that requires <c>admin</c> (AuthSetup). Ownership of accounts and
    /// payments is the ledger's check (CommandFlags.OwnerOnly) and the handlers' for reads, not a policy's.
    /// </summary>
    public static void Map(WebApplication app, Api api, Func<HttpContext, Task> ready)
    {
        var v1 = app.MapGroup("/v1").RequireRateLimiting(Auth.AuthSetup.RateLimitPolicy);
        var user = v1.MapGroup("").RequireAuthorization(Auth.AuthSetup.UserPolicy);
        var admin = v1.MapGroup("").RequireAuthorization(Auth.AuthSetup.AdminPolicy);
        v1.MapPost("/users", H(c => api.Register(c)))
            .WithTags("users").WithSummary("Sign up: creates the user and their wallet")
            .WithMetadata(new JsonRequestBody(typeof(C.RegisterRequest))).Produces<C.User>(201).Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(409);
        v1.MapPost("/auth/token", H(c => api.Login(c)))
            .WithTags("users").WithSummary("Log in: a bearer token for every other endpoint")
            .WithMetadata(new JsonRequestBody(typeof(C.LoginRequest))).Produces<C.TokenResponse>().Produces<C.ErrorEnvelope>(401);
        v1.MapPost("/auth/refresh", H(c => api.Refresh(c)))
            .WithTags("users").WithSummary("A new access token and refresh token for a refresh token (which is used up; a reused one revokes its session)")
            .WithMetadata(new JsonRequestBody(typeof(C.RefreshRequest))).Produces<C.TokenResponse>().Produces<C.ErrorEnvelope>(401);
        user.MapPost("/auth/logout", H(c => api.Logout(c)))
            .WithTags("users").WithSummary("Revoke this access token (until it expires) and, if given, the refresh token's session")
            .WithMetadata(new JsonRequestBody(typeof(C.LogoutRequest))).Produces(204).Produces<C.ErrorEnvelope>(401);
        user.MapGet("/users/me", H(c => api.Me(c)))
            .WithTags("users").WithSummary("The caller, with their phone and notification choices").Produces<C.UserProfileView>().Produces<C.ErrorEnvelope>(401);

        user.MapGet("/accounts/{id:long}", (HttpContext c, long id) => api.GetAccount(c, id))
            .WithTags("accounts").WithSummary("An account's balances").Produces<C.Account>().Produces<C.ErrorEnvelope>(403).Produces<C.ErrorEnvelope>(404);
        user.MapGet("/accounts/{id:long}/payments", (HttpContext c, long id) => api.ListPayments(c, id))
            .WithTags("accounts").WithSummary("An account's payments, newest first (query: limit, after)").Produces<C.PaymentPage>().Produces<C.ErrorEnvelope>(403);
        user.MapPost("/accounts/{id:long}/deposits", (HttpContext c, long id) => api.Deposit(c, id))
            .WithTags("accounts").WithSummary("Top up your account from the platform's funding account (Idempotency-Key header)")
            .WithMetadata(new JsonRequestBody(typeof(C.DepositRequest))).Produces<C.Payment>(201).Produces<C.ErrorEnvelope>(422);

        user.MapPost("/payments", H(c => api.CreatePayment(c)))
            .WithTags("payments").WithSummary("Pay, or authorize with capture=false (Idempotency-Key header)")
            .WithMetadata(new JsonRequestBody(typeof(C.PaymentRequest))).Produces<C.Payment>(201).Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(403)
            .Produces<C.ErrorEnvelope>(404).Produces<C.ErrorEnvelope>(409).Produces<C.ErrorEnvelope>(422);
        user.MapPost("/payments/batch", H(c => api.Batch(c)))
            .WithTags("payments").WithSummary("Several payments, a result each, in order (Idempotency-Key header)")
            .WithMetadata(new JsonRequestBody(typeof(C.BatchRequest))).Produces<C.BatchResponse>().Produces<C.ErrorEnvelope>(400);
        user.MapGet("/payments/{id:long}", (HttpContext c, long id) => api.GetPayment(c, id))
            .WithTags("payments").WithSummary("A payment you paid or received").Produces<C.Payment>().Produces<C.ErrorEnvelope>(403).Produces<C.ErrorEnvelope>(404);
        user.MapPost("/payments/{id:long}/capture", (HttpContext c, long id) => api.Capture(c, id))
            .WithTags("payments").WithSummary("Capture an authorization, wholly or in part (Idempotency-Key header)")
            .WithMetadata(new JsonRequestBody(typeof(C.CaptureRequest))).Produces<C.Payment>().Produces<C.ErrorEnvelope>(422);
        user.MapPost("/payments/{id:long}/void", (HttpContext c, long id) => api.Void(c, id))
            .WithTags("payments").WithSummary("Release an authorization's hold (Idempotency-Key header)").Produces<C.Payment>().Produces<C.ErrorEnvelope>(422);
        user.MapPost("/payments/{id:long}/refunds", (HttpContext c, long id) => api.Refund(c, id))
            .WithTags("payments").WithSummary("Refund a settled payment, wholly or in part (Idempotency-Key header)")
            .WithMetadata(new JsonRequestBody(typeof(C.RefundRequest))).Produces<C.Payment>(201).Produces<C.ErrorEnvelope>(422);

        admin.MapPost("/payments/{id:long}/review", (HttpContext c, long id) => api.Review(c, id))
            .WithTags("admin").WithSummary("Approve or decline a payment held for review (admin; Idempotency-Key header optional)")
            .WithMetadata(new JsonRequestBody(typeof(C.ReviewRequest)), new Auth.ForbiddenMessage("Only an admin may review payments held by fraud screening.")).Produces<C.Payment>().Produces<C.ErrorEnvelope>(403).Produces<C.ErrorEnvelope>(404).Produces<C.ErrorEnvelope>(422);

        var freezing = new Auth.ForbiddenMessage("Only an admin may freeze or unfreeze accounts.");
        admin.MapPost("/admin/accounts/{id:long}/freeze", (HttpContext c, long id) => api.SetFrozen(c, id, true)).WithMetadata(freezing)
            .WithTags("admin").WithSummary("Freeze an account (admin)").Produces<C.Account>().Produces<C.ErrorEnvelope>(403);
        admin.MapPost("/admin/accounts/{id:long}/unfreeze", (HttpContext c, long id) => api.SetFrozen(c, id, false)).WithMetadata(freezing)
            .WithTags("admin").WithSummary("Unfreeze an account (admin)").Produces<C.Account>().Produces<C.ErrorEnvelope>(403);
        admin.MapPost("/admin/auth/keys/rotate", H(c => api.RotateSigningKey(c)))
            .WithMetadata(new Auth.ForbiddenMessage("Only an admin may rotate the token signing key."))
            .WithTags("admin").WithSummary("Rotate the token signing key: a new key signs, the previous one verifies until its tokens expire (admin)")
            .Produces<C.KeyRotationResponse>().Produces<C.ErrorEnvelope>(403).Produces<C.ErrorEnvelope>(409);

        Events.EventRoutes.Map(app, user);
        Events.WebhookRoutes.Map(app, user);
        Notifications.NotificationRoutes.Map(app, v1, user, admin); // phone, channels, unsubscribe, STOP, audit log: docs/notifications.md
        Rewards.RewardRoutes.Map(app, v1, user, admin);
        WebRoutes.Map(user, admin, app.Services.GetRequiredService<Platform>()); // the web app's additions (issue 15): Http/WebApi.cs
        AdminDeliveriesRoutes.Map(app, admin); // the operators' dead letters (issue 15): Http/AdminDeliveriesApi.cs
        AdminLatencyRoutes.Map(app, admin); // acknowledgement latency per minute for the operators' chart (issue 15): Http/AdminLatencyApi.cs

        app.MapGet("/health/live", (HttpContext c) => JsonOut.Write(c, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", "live");
            w.WriteEndObject();
        })).WithTags("health");
        app.MapGet("/health/ready", ready).WithTags("health");
        app.MapFallback(ErrorHandling.NotFound);
    }
}
