namespace RamPay.Server.Tests;

/// <summary>
/// One server for a whole test class. Tests that share it must not interfere: each signs up users of its own.
/// Subclasses change the configuration.
/// </summary>
public class ServerFixture : IAsyncLifetime
{
    public const long MaxDeposit = 1_000_000;
    public const int MaxBatchPayments = 10;
    public const int MaxRequestBodyBytes = 64 * 1024;

    /// <summary>
    /// Fast password hashing for many sign-ups, no rate limit to trip over, and small limits the tests can reach
    /// with small requests. Fraud scoring off: these tests test the API, not the model, and some pay in bursts of
    /// hundreds from accounts opened a second ago, which the model is trained to stop; <see cref="FraudReviewTests"/>
    /// test scoring, with the default settings too.
    /// </summary>
    public static readonly string[] TestSettings =
    [
        "Auth:PasswordHashIterations=1000",
        "RateLimit:RequestsPerSecond=1000000",
        "RateLimit:Burst=1000000",
        $"MaxDepositAmount={MaxDeposit}",
        $"MaxBatchPayments={MaxBatchPayments}",
        $"Http:MaxRequestBodyBytes={MaxRequestBodyBytes}",
        "Currencies=USD,EUR",
        "Fraud:Enabled=false",
    ];

    public ServerProcess Server { get; private set; } = null!;
    public Api Api { get; private set; } = null!;

    protected virtual IEnumerable<string> Settings => TestSettings;

    /// <summary>The server composed inside the test process (<see cref="InProcessServerFixture"/>) instead of a child process.</summary>
    protected virtual bool InProcess => false;

    public async Task InitializeAsync()
    {
        Server = InProcess ? await ServerProcess.StartInProcessAsync([.. Settings]) : await ServerProcess.StartAsync([.. Settings]);
        Api = new Api(Server);
    }

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
    }
}

/// <summary>
/// <see cref="ServerFixture"/>'s server composed inside the test process (<see cref="ServerProcess.StartInProcessAsync"/>):
/// for API tests that need no process boundary (no kill, stop, restart, second server or process output).
/// RAMPAY_TEST_IN_PROCESS=0 runs it as a child process instead (to compare the two, or to rule the harness out).
/// </summary>
public class InProcessServerFixture : ServerFixture
{
    protected override bool InProcess => Environment.GetEnvironmentVariable("RAMPAY_TEST_IN_PROCESS") != "0";
}
