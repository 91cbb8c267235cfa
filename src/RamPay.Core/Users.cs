using System.Buffers.Binary;

namespace RamPay.Core;

/// <summary>Persisted: values frozen.</summary>
public enum UserRole : byte
{
    User = 0,
    Admin = 1,
}

/// <summary>A registered user. Immutable once registered; owned by the ledger state (snapshots, replay).</summary>
public sealed record User(long Id, string Email, string Name, string PasswordHash, UserRole Role, long WalletAccountId, long CreatedAtMs);

/// <summary>
/// What a RegisterUser command carries besides its fixed fields, as its attachment: three length-prefixed UTF-8
/// strings (u16 byte length, then the bytes) in the order email, name, password hash. The password hash is whatever
/// the host stores (RamPay's server: a salted PBKDF2 string); the ledger never sees a password.
/// </summary>
public sealed record UserProfile(string Email, string Name, string PasswordHash)
{
    public const int MaxEmailLength = 254;
    public const int MaxNameLength = 200;
    public const int MaxPasswordHashLength = 512;

    /// <summary>Emails compare case-insensitively: stored and looked up in lower case.</summary>
    public static string NormalizeEmail(string email) => email.Trim().ToLowerInvariant();

    public bool IsValid =>
        Email.Length is >= 3 and <= MaxEmailLength && Email.Contains('@', StringComparison.Ordinal)
        && Name.Length is >= 1 and <= MaxNameLength
        && PasswordHash.Length is >= 1 and <= MaxPasswordHashLength;

    /// <summary>Throws <see cref="ArgumentException"/> when a field has no UTF-8 form (a lone surrogate) or is longer than a u16 length.</summary>
    public byte[] Encode()
    {
        string[] fields = [Email, Name, PasswordHash];
        var bytes = new byte[fields.Sum(LengthPrefixedUtf8.Size)];
        int offset = 0;
        foreach (string field in fields) offset += LengthPrefixedUtf8.Write(bytes.AsSpan(offset), field);
        return bytes;
    }

    /// <summary>Decodes an attachment; null when it is not exactly three well-formed strings.</summary>
    public static UserProfile? TryDecode(ReadOnlySpan<byte> bytes) =>
        LengthPrefixedUtf8.TryRead(ref bytes, out string email) && LengthPrefixedUtf8.TryRead(ref bytes, out string name)
        && LengthPrefixedUtf8.TryRead(ref bytes, out string passwordHash) && bytes.IsEmpty
            ? new UserProfile(email, name, passwordHash)
            : null;

    /// <summary>64 bits of SHA-256 over the encoding: goes in the command's Argument, so idempotency compares profiles.</summary>
    public static long Digest(ReadOnlySpan<byte> encoded)
    {
        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(encoded, hash);
        return BinaryPrimitives.ReadInt64LittleEndian(hash);
    }

    /// <summary>The RegisterUser command for this profile, and its attachment. The caller sets ClientId and Key.</summary>
    public (Command Command, byte[] Attachment) ToCommand(UserRole role, Currency walletCurrency)
    {
        var normalized = this with { Email = NormalizeEmail(Email) };
        byte[] attachment = normalized.Encode();
        var command = new Command
        {
            Type = CommandType.RegisterUser,
            Flags = (byte)role,
            Currency = walletCurrency,
            Argument = Digest(attachment),
        };
        return (command, attachment);
    }
}
