using System.Buffers.Binary;
using RamPay.Core;

namespace RamPay.Protocol;

/// <summary>
/// One payment command as a client sends it: 64 bytes, little-endian, written field by field.
/// <code>
///  0 type u8 | 1 reserved u8 (0) | 2 currency u16 | 4 reserved u32 (0) | 8 key_hi u64 | 16 key_lo u64
/// 24 from_account i64 | 32 to_account i64 | 40 payment_id i64 | 48 amount i64 | 56 hold_timeout_ms i64
/// </code>
/// Only payment types travel on the wire (<see cref="IsAllowedType"/>); there is no client id and no timestamp,
/// because the server takes those from the authenticated connection and the engine's clock.
/// </summary>
public record struct WireCommand : IWireRecord<WireCommand>
{
    public const int Size = 64;

    /// <summary>Deposit, Transfer, Authorize, Capture, Void or Refund: the <see cref="CommandType"/> value itself.</summary>
    public CommandType Type;
    /// <summary>Packed ISO 4217 code (<see cref="Currency.Code"/>); passed through, the ledger judges it.</summary>
    public Currency Currency;
    /// <summary>The first 16 bytes of SHA-256 of the client's key string, see <see cref="IdempotencyKey.FromString"/>.</summary>
    public IdempotencyKey Key;
    public long FromAccount;
    public long ToAccount;
    /// <summary>Capture, Void, Refund: the payment acted on.</summary>
    public long PaymentId;
    /// <summary>Minor units. Capture: 0 means the whole authorized amount.</summary>
    public long Amount;
    /// <summary>Authorize: hold timeout in milliseconds, 0 = the ledger's default. Other types: send 0.</summary>
    public long HoldTimeoutMs;

    static int IWireRecord<WireCommand>.RecordBytes => Size;

    /// <summary>The command types a client may send. Account management (open, freeze) and ticks are not client operations.</summary>
    public static bool IsAllowedType(CommandType type) => type is CommandType.Deposit or CommandType.Transfer
        or CommandType.Authorize or CommandType.Capture or CommandType.Void or CommandType.Refund;

    /// <summary>Writes the 64 bytes; reserved bytes are written as zero.</summary>
    public static void Write(in WireCommand command, Span<byte> dest)
    {
        if (!IsAllowedType(command.Type))
            throw new ArgumentException($"command type {command.Type} may not be sent on the wire", nameof(command));
        if (dest.Length < Size) throw new ArgumentException("destination shorter than a wire command", nameof(dest));
        dest[0] = (byte)command.Type;
        dest[1] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(dest[2..], command.Currency.Code);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(dest[8..], command.Key.Hi);
        BinaryPrimitives.WriteUInt64LittleEndian(dest[16..], command.Key.Lo);
        BinaryPrimitives.WriteInt64LittleEndian(dest[24..], command.FromAccount);
        BinaryPrimitives.WriteInt64LittleEndian(dest[32..], command.ToAccount);
        BinaryPrimitives.WriteInt64LittleEndian(dest[40..], command.PaymentId);
        BinaryPrimitives.WriteInt64LittleEndian(dest[48..], command.Amount);
        BinaryPrimitives.WriteInt64LittleEndian(dest[56..], command.HoldTimeoutMs);
    }

    /// <summary>
    /// Reads 64 bytes. Refuses only what is structurally wrong: a type not allowed on the wire, non-zero reserved
    /// bytes. Values (amount, currency, accounts, key, hold timeout) are the ledger's to judge, per command.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> src, out WireCommand command, out string reason)
    {
        command = default;
        if (src.Length != Size)
        {
            reason = "a wire command is 64 bytes";
            return false;
        }
        var type = (CommandType)src[0];
        if (!IsAllowedType(type))
        {
            reason = "the command type is not allowed on the wire (deposit, transfer, authorize, capture, void, refund)";
            return false;
        }
        if (src[1] != 0 || BinaryPrimitives.ReadUInt32LittleEndian(src[4..]) != 0)
        {
            reason = "reserved bytes of a command must be zero";
            return false;
        }
        command.Type = type;
        command.Currency = new Currency(BinaryPrimitives.ReadUInt16LittleEndian(src[2..]));
        command.Key = new IdempotencyKey(BinaryPrimitives.ReadUInt64LittleEndian(src[8..]), BinaryPrimitives.ReadUInt64LittleEndian(src[16..]));
        command.FromAccount = BinaryPrimitives.ReadInt64LittleEndian(src[24..]);
        command.ToAccount = BinaryPrimitives.ReadInt64LittleEndian(src[32..]);
        command.PaymentId = BinaryPrimitives.ReadInt64LittleEndian(src[40..]);
        command.Amount = BinaryPrimitives.ReadInt64LittleEndian(src[48..]);
        command.HoldTimeoutMs = BinaryPrimitives.ReadInt64LittleEndian(src[56..]);
        reason = "";
        return true;
    }

    /// <summary>
    /// The engine command for a decoded wire command. The client id comes from the authenticated connection, never
    /// from the frame, so a client cannot act under another's idempotency scope; the timestamp stays 0 for the
    /// engine to stamp. A disallowed type here means a caller skipped the codec's validation: a bug, so it throws.
    /// </summary>
    public static Command ToCommand(in WireCommand wire, long clientId)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(clientId);
        Invariant.Check(IsAllowedType(wire.Type), "a command type not allowed on the wire reached ToCommand");
        return new Command
        {
            Type = wire.Type,
            Flags = 0,
            Currency = wire.Currency,
            TimestampMs = 0,
            ClientId = clientId,
            Key = wire.Key,
            FromAccount = wire.FromAccount,
            ToAccount = wire.ToAccount,
            PaymentId = wire.PaymentId,
            Amount = wire.Amount,
            Argument = wire.HoldTimeoutMs,
        };
    }
}
