using System.Text.Json.Serialization;

namespace RamPay.Web.Services;

// The app reads and sends the API's shapes through RamPay.Contracts (RamPayJsonContext), the types the server, the
// client and the agreement test share. This context holds only the plain JSON values the app handles itself.

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(System.Text.Json.Nodes.JsonObject))]
[JsonSerializable(typeof(System.Text.Json.JsonElement))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(bool))]
public sealed partial class WebJson : JsonSerializerContext;
