using System.Diagnostics;
using System.Net;

namespace RamPay.Server.Tests;

/// <summary>Where settings come from (environment in both forms, flags winning), --help, and a bad setting refused at start.</summary>
public class ConfigurationTests
{
    [Fact]
    public async Task Settings_come_from_RAMPAY_and_RamPay__environment_variables_and_flags_win_over_them()
    {
        var environment = new Dictionary<string, string>
        {
            ["RAMPAY_MAXDEPOSITAMOUNT"] = "500",
            ["RamPay__Currencies"] = "USD,CHF",
            ["RAMPAY_MAXBATCHPAYMENTS"] = "1",
            ["RamPay__Auth__PasswordHashIterations"] = "1000",
        };
        await using var server = await ServerProcess.StartAsync(environment, "MaxBatchPayments=2");
        var api = new Api(server);
        var user = await api.SignUpAsync(currency: "CHF");
        (await api.PostAsync($"/v1/accounts/{user.WalletId}/deposits", user.Token, new { amount = 500, currency = "CHF" }, Api.NewKey())).Expect(HttpStatusCode.Created);
        var tooMuch = await api.PostAsync($"/v1/accounts/{user.WalletId}/deposits", user.Token, new { amount = 501, currency = "CHF" }, Api.NewKey());
        tooMuch.ExpectError(HttpStatusCode.UnprocessableEntity, "deposit_limit_exceeded");
        var other = await api.SignUpAsync(currency: "CHF");
        string Item(long amount) => $$"""{"from_account": {{user.WalletId}}, "to_account": {{other.WalletId}}, "amount": {{amount}}, "currency": "CHF"}""";
        (await api.SendAsync(HttpMethod.Post, "/v1/payments/batch", user.Token, rawBody: $$"""{"payments": [{{Item(1)}}, {{Item(2)}}]}""", idempotencyKey: Api.NewKey()))
            .Expect(HttpStatusCode.OK);
        (await api.SendAsync(HttpMethod.Post, "/v1/payments/batch", user.Token, rawBody: $$"""{"payments": [{{Item(1)}}, {{Item(2)}}, {{Item(3)}}]}""", idempotencyKey: Api.NewKey()))
            .ExpectError(HttpStatusCode.BadRequest, "batch_too_large");
    }

    internal static async Task<(int ExitCode, string Output)> RunServerAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "rampay-server.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    [Fact]
    public async Task Help_lists_the_flags_and_exits_zero()
    {
        var (code, output) = await RunServerAsync("--help");
        Assert.Equal(0, code);
        foreach (var flag in new[] { "--data", "--http-port", "--tcp-port", "--fsync", "--admin-email", "--admin-password", "--redis", "--fraud", "--fraud-model", "RamPay:Fraud:ReviewThreshold", "RAMPAY_" })
            Assert.Contains(flag, output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--RamPay:Fraud:ModelPath=/nonexistent/model.rpfm", "RamPay:Fraud:ModelPath")]
    [InlineData("--RamPay:Fraud:DeclineThreshold=0.1", "RamPay:Fraud: thresholds")]
    [InlineData("--RamPay:Fraud:BlockedAccounts=5,x", "RamPay:Fraud:BlockedAccounts")]
    public async Task A_bad_fraud_setting_stops_the_server_at_start_with_its_name(string setting, string named)
    {
        string dir = Directory.CreateTempSubdirectory("rampay-config-").FullName;
        try
        {
            var (code, output) = await RunServerAsync("--data", dir, "--http-port", "0", setting);
            Assert.Equal(2, code);
            Assert.Contains(named, output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_bad_setting_stops_the_server_at_start_with_its_name()
    {
        string dir = Directory.CreateTempSubdirectory("rampay-config-").FullName;
        try
        {
            var (code, output) = await RunServerAsync("--data", dir, "--http-port", "0", "--RamPay:DefaultCurrency=XYZ");
            Assert.Equal(2, code);
            Assert.Contains("RamPay:DefaultCurrency", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
