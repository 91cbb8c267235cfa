namespace RamPay.Web.Tests;

/// <summary>The logged-in user the component tests put in the session (GET /v1/users/me's shape, RamPay.Contracts).</summary>
internal static class TestUsers
{
    public static UserProfileView Ada(string role) =>
        new(UserId: 2, WalletAccountId: 5, Email: "ada@example.com", Name: "Ada", Role: role, Currency: "USD",
            CreatedAt: DateTimeOffset.UnixEpoch, Phone: null, PhoneVerified: false, Notifications: new NotificationChannels(true, false));
}
