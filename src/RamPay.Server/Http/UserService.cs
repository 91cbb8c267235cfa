using System.Security.Cryptography;
using RamPay.Core;
using RamPay.Server.Auth;

namespace RamPay.Server.Http;

/// <summary>Sign-up (for users, and for the first admin at start-up) and the checks on what a user gives us.</summary>
public static class UserService
{
    public const int MinPasswordLength = 8;
    public const int MaxPasswordLength = 128;

    public sealed record Registration(string Email, string Password, string Name, string Currency);

    public static ApiError InvalidCredentials() => new(401, "invalid_credentials", "The email or the password is wrong.");

    private static string? _dummyHash;

    /// <summary>A hash to check a password against when the email is unknown, so that both failures cost the same.</summary>
    public static string DummyHash(int iterations) => _dummyHash ??= PasswordHasher.Hash("not a password of anyone", iterations);

    /// <summary>Registers a user with a wallet in one journaled command; an email already registered is email_taken.</summary>
    public static async Task<(User User, Currency Currency)> RegisterAsync(Platform platform, Registration r, UserRole role, bool duringStartup = false)
    {
        string email = UserProfile.NormalizeEmail(r.Email);
        int at = email.IndexOf('@');
        if (email.Length is < 3 or > UserProfile.MaxEmailLength || at <= 0 || at == email.Length - 1 || email.Any(char.IsWhiteSpace) || email.Any(char.IsControl))
            throw ApiError.BadRequest("invalid_email", $"'email' must be an email address of 3..{UserProfile.MaxEmailLength} characters.", "email");
        if (r.Password.Length is < MinPasswordLength or > MaxPasswordLength)
            throw ApiError.BadRequest("invalid_password", $"'password' must be {MinPasswordLength}..{MaxPasswordLength} characters.", "password");
        string name = r.Name.Trim();
        if (name.Length is < 1 or > UserProfile.MaxNameLength || name.Any(char.IsControl))
            throw ApiError.BadRequest("invalid_name", $"'name' must be 1..{UserProfile.MaxNameLength} characters with no control characters.", "name");
        if (!Currency.TryParse(r.Currency, out var currency))
            throw ApiError.BadRequest("invalid_currency", "'currency' must be a three-letter upper-case ISO 4217 code such as \"USD\".", "currency");
        if (!platform.FundingAccounts.ContainsKey(currency))
            throw ApiError.BadRequest("invalid_currency", $"The platform holds no {currency}: wallets are opened in {platform.Options.Currencies}.", "currency");

        string hash = PasswordHasher.Hash(r.Password, platform.Options.Auth.PasswordHashIterations);
        var (command, attachment) = new UserProfile(email, name, hash).ToCommand(role, currency);
        // The ledger refuses a second user with the same email on its single thread, so two sign-ups racing for one
        // email cannot both win whatever their keys. The key is therefore that of this attempt (its profile, whose
        // hash is salted afresh each time): a refused sign-up (too_many_accounts, say) never blocks a later one.
        command.ClientId = 0;
        command.Key = IdempotencyKey.FromString("register:" + command.Argument.ToString("x16", System.Globalization.CultureInfo.InvariantCulture));
        var result = await platform.Engine.ExecuteAsync(command, attachment, duringStartup);
        if (!result.IsOk) throw ApiError.From(result.Code);
        var user = await platform.Engine.QueryAsync(l => l.GetUser(result.Id), duringStartup)
                   ?? throw new InvalidOperationException($"user {result.Id} was registered but cannot be read back");
        return (user, currency);
    }

    /// <summary>
    /// First-start set-up, safe on every start: a funding account per configured currency and the admin user, each
    /// created only if the ledger does not have it yet (so a restart after the idempotency window opens nothing twice).
    /// </summary>
    public static async Task BootstrapAsync(Platform platform, ILogger log)
    {
        var options = platform.Options;
        var currencies = options.ParseCurrencies();
        string adminEmail = UserProfile.NormalizeEmail(options.Admin.Email);
        var (existing, adminExists) = await platform.Engine.QueryAsync(l =>
        {
            var found = new Dictionary<Currency, long>();
            for (long id = 1; id <= l.AccountCount; id++)
            {
                var a = l.GetAccount(id);
                if ((a.Flags & AccountFlags.Funding) != 0 && a.Owner == 0) found.TryAdd(a.Currency, id);
            }
            return (found, l.FindUserByEmail(adminEmail) is not null);
        }, duringStartup: true);

        foreach (var currency in currencies)
        {
            if (existing.ContainsKey(currency)) continue;
            var result = await platform.Engine.ExecuteAsync(new Command
            {
                Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.Funding, Currency = currency, ClientId = 0,
                Key = IdempotencyKey.FromString("system:open-funding:" + currency),
            }, duringStartup: true);
            if (!result.IsOk) throw new InvalidOperationException($"could not open the {currency} funding account: {result}");
            existing[currency] = result.Id;
            log.LogInformation("opened the {Currency} funding account {AccountId}", currency.ToString(), result.Id);
        }
        platform.SetFundingAccounts(existing);

        if (!adminExists)
        {
            string password = options.Admin.Password;
            if (password.Length == 0)
            {
                password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));
                // Shown once, on purpose: the operator needs it to log in the first time.
                log.LogInformation("admin password (shown once; set RamPay:Admin:Password to choose one): {AdminPassword}", password);
            }
            var (admin, _) = await RegisterAsync(platform, new Registration(adminEmail, password, options.Admin.Name, options.DefaultCurrency), UserRole.Admin, duringStartup: true);
            log.LogInformation("created admin user {UserId} <{Email}>", admin.Id, admin.Email);
        }
    }
}
