using RamPay.Contracts;
using Account = RamPay.Contracts.Account;
using Payment = RamPay.Contracts.Payment;
using User = RamPay.Contracts.User;
using RamPay.Server.Tests;

namespace RamPay.Client.Tests;

/// <summary>
/// One real rampay-server for a test class, so the client is checked against what the server actually sends.
/// The process handling is the server tests' <see cref="ServerProcess"/> (from RamPay.TestSupport, not copied):
/// one implementation of "run the server in a test" for both.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string AdminEmail = ServerProcess.AdminEmail;
    public const string AdminPassword = ServerProcess.AdminPassword;

    private ServerProcess? _server;

    private ServerProcess Server => _server ?? throw new InvalidOperationException("the server is not started");
    public Uri HttpAddress => Server.HttpBaseAddress;
    public string TcpHost => Server.TcpEndPoint.Address.ToString();
    public int TcpPort => Server.TcpEndPoint.Port;

    public async Task InitializeAsync() =>
        // No rate limit and cheap password hashing: the tests sign up many users quickly.
        // Fraud scoring off: the flows here pay between brand-new accounts, which the model holds (the server's FraudReviewTests cover it).
        _server = await ServerProcess.StartAsync("RateLimit:RequestsPerSecond=0", "Auth:PasswordHashIterations=1000", "Fraud:Enabled=false");

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
    }

    public RamPayHttpClient NewHttpClient() => new(HttpAddress);

    /// <summary>Signs up a fresh user (a USD wallet unless told otherwise) and logs in.</summary>
    public async Task<(RamPayHttpClient Client, User User)> NewUserAsync(string? currency = null)
    {
        RamPayHttpClient client = NewHttpClient();
        string email = $"user-{Guid.NewGuid():N}@rampay.test";
        User user = await client.RegisterAsync(email, "password-123", "Test User", currency);
        await client.LoginAsync(email, "password-123");
        return (client, user);
    }
}
