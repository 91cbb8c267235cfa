namespace RamPay.Contracts;

// The notifications API (docs/notifications.md): phone and channel choices on the user, phone verification, the
// notification audit log. Snake_case on the wire through RamPayJsonContext.

/// <summary>Which channels a user wants notifications on.</summary>
public sealed record NotificationChannels(bool Email, bool Sms);

/// <summary>
/// <c>GET /v1/users/me</c> and <c>PATCH /v1/users/me</c>: the user with their phone (E.164 or null), whether it is
/// verified, and their channel choices.
/// </summary>
public sealed record UserProfileView(long UserId, long WalletAccountId, string Email, string Name, string Role, string Currency, DateTimeOffset CreatedAt,
    string? Phone, bool PhoneVerified, NotificationChannels? Notifications);

/// <summary>The channel part of <see cref="UpdateUserRequest"/>: a missing field leaves that channel as it is.</summary>
public sealed record NotificationChannelsUpdate(bool? Email = null, bool? Sms = null);

/// <summary>
/// <c>PATCH /v1/users/me</c>. <see cref="Phone"/>: a new E.164 number sends a 6-digit code by SMS and unverifies the
/// phone. To remove the phone send <c>"phone": null</c> (the client's <c>RemovePhone</c>); leaving the field out keeps it.
/// </summary>
public sealed record UpdateUserRequest(string? Phone = null, NotificationChannelsUpdate? Notifications = null);

/// <summary><c>POST /v1/users/me/phone/verify</c>.</summary>
public sealed record VerifyPhoneRequest(string Code);

/// <summary>One outbound message in the audit log (<c>GET /v1/admin/notifications</c>): an email, an SMS or a webhook delivery.</summary>
/// <param name="Status"><c>sent</c>, <c>failed</c> (the last attempt failed; it will be retried), <c>pending</c> (not attempted yet), <c>dead</c> (dead-lettered).</param>
public sealed record NotificationRecord(string Id, long UserId, string Channel, string Destination, string Template, string EventId, string Status,
    int Attempts, DateTimeOffset CreatedAt, string? LastError);

/// <summary>A page of the audit log, newest first.</summary>
public sealed record NotificationPage(IReadOnlyList<NotificationRecord> Data, bool HasMore);
