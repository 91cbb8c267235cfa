using System.Buffers.Binary;
using System.Text;

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

    public byte[] Encode()
    {
        var parts = new[] { Encoding.UTF8.GetBytes(Email), Encoding.UTF8.GetBytes(Name), Encoding.UTF8.GetBytes(PasswordHash) };
        var bytes = new byte[parts.Sum(p => 2 + p.Length)];
        int offset = 0;
        foreach (var part in parts)
        {
            if (part.Length > ushort.MaxValue) throw new ArgumentException("a profile field is too long to encode");
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(offset), (ushort)part.Length);
            part.CopyTo(bytes, offset + 2);
            offset += 2 + part.Length;
        }
        return bytes;
    }

    /// <summary>Decodes an attachment; null when it is not exactly three well-formed strings.</summary>
    public static UserProfile? TryDecode(ReadOnlySpan<byte> bytes)
    {
        var fields = new string[3];
        try
        {
            for (int i = 0; i < fields.Length; i++)
            {
                if (bytes.Length < 2) return null;
                int length = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
                if (bytes.Length < 2 + length) return null;
                fields[i] = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes.Slice(2, length));
                bytes = bytes[(2 + length)..];
            }
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
        return bytes.Length == 0 ? new UserProfile(fields[0], fields[1], fields[2]) : null;
    }

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
