using System.Net;

namespace RamPay.Client;

// The request and response types are RamPay.Contracts', shared with the server and the web app.

/// <summary>A successful answer to a keyed POST: the value plus what the headers said.</summary>
/// <param name="Replayed">The server answered <c>Idempotent-Replayed: true</c>: the key was seen before and this is its first result (the body shows the object as it is now).</param>
/// <param name="IdempotencyKey">The key sent, so a caller that let the client make one up can retry with it.</param>
public sealed record RamPayResponse<T>(T Value, HttpStatusCode StatusCode, bool Replayed, string? IdempotencyKey);
