using System.Security.Cryptography;

namespace RamPay.Core;

/// <summary>
/// The ledger's whole state as bytes: a canonical, field-by-field, little-endian encoding (BinaryWriter) of the
/// counters, accounts, payments (with their fraud scores), payment notes in payment id order, the hold queue in heap
/// order, users, the idempotency table oldest first, and the fraud state (settings, the model's file bytes, the model
/// versions that scored payments, every account's features). The same bytes feed snapshots and the state hash, so "same hash" means "same snapshot".
/// Derived state (the idempotency index, each payment's heap position) is rebuilt on load, not stored.
/// </summary>
public sealed partial class Ledger
{
    private const uint SnapshotMagic = 0x4C534152; // "RASL" little-endian: RamPay ledger state
    /// <summary>
    /// The version written. 2 added the payment notes after the payments; 3 added each payment's fraud score, reasons
    /// and model index (after its status) and the fraud state (at the end). Older states still load: version 1 as a
    /// state without notes, versions 1 and 2 as states that never scored a payment (fraud scoring off until a
    /// ConfigureFraud command), so that a snapshot taken before an upgrade need not be replayed away.
    /// </summary>
    public const int SnapshotFormatVersion = 5;
    /// <summary>What a ledger under rules version 2 writes (format 4, unchanged).</summary>
    public const int RulesVersion2Format = 4;
    /// <summary>What a ledger under rules version 1 writes, byte for byte as before rules were versioned (so its hash is unchanged).</summary>
    public const int RulesVersion1Format = 3;
    private const int FirstVersionWithNotes = 2;
    private const int FirstVersionWithFraud = 3;
    private const int FirstVersionWithRules = 4;
    /// <summary>Format 5 (rules version 3): the payments as their count and running digest; the resident ones, with their notes, in the physical part.</summary>
    private const int FirstVersionWithPaymentDigest = 5;

    /// <summary>The whole state: what the state hash covers, then (format 4) the hot keys, which a snapshot needs.</summary>
    public void WriteState(Stream stream) => WriteState(stream, physical: true);

    /// <summary>
    /// Format 3 under rules version 1 (unchanged). Format 4 under version 2: the rules version after the format version,
    /// the key log's logical part (budget, window, count, counter, digest, marks) where version 1 had its two counters, no
    /// key entries after the users, and, after the fraud state and only when <paramref name="physical"/>, the hot key entries:
    /// where an entry is kept is not logical state, so the state hash leaves them out.
    /// </summary>
    private void WriteState(Stream stream, bool physical)
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        bool v1 = _keyLog is null;
        bool v3 = _rulesVersion >= PaymentsUnboundedRulesVersion;
        w.Write(SnapshotMagic);
        w.Write(v1 ? RulesVersion1Format : v3 ? SnapshotFormatVersion : RulesVersion2Format);
        if (!v1) w.Write(_rulesVersion);
        w.Write(_clockMs);
        w.Write(_commandsApplied);
        WriteInt128(w, _debitsPosted); WriteInt128(w, _creditsPosted); WriteInt128(w, _debitsPending); WriteInt128(w, _creditsPending);
        if (v1) { w.Write(_idempotency.EvictedEarly); w.Write(_idempotency.Expired); }
        else _keyLog!.WriteLogical(w);

        w.Write(_accountCount);
        for (int i = 0; i < _accountCount; i++)
        {
            ref var a = ref _accounts[i];
            w.Write(a.Id); w.Write(a.Owner); w.Write(a.CreatedAtMs);
            w.Write(a.DebitsPosted); w.Write(a.CreditsPosted); w.Write(a.DebitsPending); w.Write(a.CreditsPending);
            w.Write(a.LastPaymentId); w.Write(a.Currency.Code); w.Write((byte)a.Flags); w.Write(a.Frozen);
        }

        w.Write(_payments.Count);
        if (v3)
        {
            w.Write(_paymentDigestA); w.Write(_paymentDigestB);
        }
        else
        {
            for (long id = 1; id <= _payments.Count; id++) PaymentStore.WritePayment(w, _payments[id]);
            WriteNotes(w);
        }

        w.Write(_holds.Count);
        foreach (long id in _holds.Items) w.Write(id);

        w.Write(_users.Count);
        foreach (var u in _users)
        {
            w.Write(u.Id); w.Write(u.Email); w.Write(u.Name); w.Write(u.PasswordHash); w.Write((byte)u.Role);
            w.Write(u.WalletAccountId); w.Write(u.CreatedAtMs);
        }

        Span<byte> buffer = stackalloc byte[CommandCodec.Size];
        if (v1)
        {
            w.Write(_idempotency.Count);
            foreach (int slot in _idempotency.SlotsOldestFirst())
            {
                ref var e = ref _idempotency[slot];
                CommandCodec.Write(buffer, e.Command);
                w.Write(buffer);
                w.Write((byte)e.Result.Code); w.Write(e.Result.Id); w.Write(e.Result.SecondaryId);
            }
        }

        _fraud.Write(w);
        if (_stage.Active) _stage.Write(w, _clockMs); // rules version 4: the fraud stage's accounts (FraudStage.cs), logical state
        if (!v1 && physical) _keyLog!.WriteHot(w, buffer);
        if (v3 && physical)
        {
            _payments.WriteResident(w);
            WriteNotes(w); // only the resident payments' notes are in memory: the others are in the cold tier
        }
        WriteRewards(w); // LedgerRewards.cs: nothing at all for a ledger without reward state
    }

    private void WriteNotes(BinaryWriter w)
    {
        // Sorted: a dictionary's enumeration order is not a format. Each note as its attachment encoding, so the
        // snapshot holds the same bytes the journal did and one decoder (with its checks) reads both.
        long[] noted = [.. _notes.Keys];
        Array.Sort(noted);
        w.Write(noted.Length);
        foreach (long id in noted)
        {
            byte[] note = _notes[id].Encode();
            w.Write(id); w.Write((ushort)note.Length); w.Write(note);
        }
    }

    /// <summary>Rebuilds a ledger from <see cref="WriteState"/>'s bytes, checking every invariant afterwards.</summary>
    public static Ledger ReadState(Stream stream, LedgerOptions? options = null)
    {
        var ledger = new Ledger(options, fresh: false);
        using var r = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        if (r.ReadUInt32() != SnapshotMagic) throw new InvalidDataException("not a RamPay ledger state");
        int version = r.ReadInt32();
        if (version is < 1 or > SnapshotFormatVersion)
            throw new InvalidDataException($"ledger state format version {version} is not known to this RamPay (it knows 1 to {SnapshotFormatVersion})");
        if (version >= FirstVersionWithRules)
        {
            int rules = r.ReadInt32();
            if (rules < 2 || rules > NewestRulesVersion || (rules >= PaymentsUnboundedRulesVersion) != (version >= FirstVersionWithPaymentDigest))
                throw new InvalidDataException($"ledger state under rules version {rules}; this RamPay writes version 1 states as format 3 and knows rules up to {NewestRulesVersion}");
            ledger._rulesVersion = rules;
        }
        ledger._clockMs = r.ReadInt64();
        ledger._commandsApplied = r.ReadInt64();
        // The payments' cold tier forgets what was written after this state (the replay that follows writes it again).
        ledger._payments.Recover(ledger._commandsApplied);
        ledger._debitsPosted = ReadInt128(r); ledger._creditsPosted = ReadInt128(r);
        ledger._debitsPending = ReadInt128(r); ledger._creditsPending = ReadInt128(r);
        long evictedEarly = 0, expired = 0;
        if (version >= FirstVersionWithRules)
        {
            ledger._keyLog = KeyLog.ReadLogical(r, ledger.Options.IdempotencyWindowMs, ledger.Options.ColdKeys);
            ledger._idempotency = new IdempotencyTable(1, ledger.Options.IdempotencyWindowMs);
        }
        else
        {
            evictedEarly = r.ReadInt64();
            expired = r.ReadInt64();
        }

        int accounts = r.ReadInt32();
        if (accounts < 0 || accounts > ledger._accounts.Length)
            throw new InvalidDataException($"state holds {accounts} accounts; MaxAccounts is {ledger._accounts.Length}");
        for (int i = 0; i < accounts; i++)
        {
            ref var a = ref ledger._accounts[i];
            a.Id = r.ReadInt64(); a.Owner = r.ReadInt64(); a.CreatedAtMs = r.ReadInt64();
            a.DebitsPosted = r.ReadInt64(); a.CreditsPosted = r.ReadInt64(); a.DebitsPending = r.ReadInt64(); a.CreditsPending = r.ReadInt64();
            a.LastPaymentId = r.ReadInt64(); a.Currency = new Currency(r.ReadUInt16()); a.Flags = (AccountFlags)r.ReadByte(); a.Frozen = r.ReadBoolean();
        }
        ledger._accountCount = accounts;

        long payments = r.ReadInt64();
        bool digest = version >= FirstVersionWithPaymentDigest;
        if (digest)
        {
            ledger._payments.Capacity = long.MaxValue;
            ledger._payments.Activate();
            ledger._paymentDigestA = r.ReadUInt64(); ledger._paymentDigestB = r.ReadUInt64();
        }
        if (payments < 0 || payments > ledger._payments.Capacity)
            throw new InvalidDataException($"state holds {payments} payments; MaxPayments is {ledger._payments.Capacity}");
        for (long n = 0; n < (digest ? 0 : payments); n++)
        {
            ref var p = ref ledger._payments.Add();
            p.Id = r.ReadInt64(); p.FromAccount = r.ReadInt64(); p.ToAccount = r.ReadInt64(); p.Amount = r.ReadInt64(); p.Captured = r.ReadInt64();
            p.Refunded = r.ReadInt64(); p.CreatedAtMs = r.ReadInt64(); p.ExpiresAtMs = r.ReadInt64(); p.ParentId = r.ReadInt64();
            p.PrevForFrom = r.ReadInt64(); p.PrevForTo = r.ReadInt64(); p.Currency = new Currency(r.ReadUInt16());
            p.Kind = (PaymentKind)r.ReadByte(); p.Status = (PaymentStatus)r.ReadByte();
            if (version >= FirstVersionWithFraud)
            {
                p.FraudScore = r.ReadSingle(); p.FraudReasons = (RamPay.Fraud.FraudReasons)r.ReadUInt16(); p.FraudModel = r.ReadUInt16();
            }
        }
        if (version >= FirstVersionWithNotes && !digest) ReadNotes(r, ledger);

        int holds = r.ReadInt32();
        if (holds < 0 || holds > ledger._holds.Capacity)
            throw new InvalidDataException($"state holds {holds} open holds; MaxOpenHolds is {ledger._holds.Capacity}");
        // Re-adding in heap-array order re-creates the same array: each element is no smaller than its parent. Under format 5
        // the payments come later (the physical part), so the holds are added once they are in.
        long[] holdIds = new long[holds];
        for (int i = 0; i < holds; i++) holdIds[i] = r.ReadInt64();
        if (!digest) AddHolds(ledger, holdIds);

        int users = r.ReadInt32();
        if (users < 0 || users > accounts) throw new InvalidDataException($"state holds {users} users but only {accounts} accounts");
        for (int i = 0; i < users; i++)
        {
            var u = new User(r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadString(), (UserRole)r.ReadByte(), r.ReadInt64(), r.ReadInt64());
            ledger._users.Add(u);
            if (!ledger._userIdsByEmail.TryAdd(u.Email, u.Id)) throw new InvalidDataException($"state holds the email of user {u.Id} twice");
        }

        Span<byte> buffer = stackalloc byte[CommandCodec.Size];
        if (version < FirstVersionWithRules)
        {
            int keys = r.ReadInt32();
            if (keys < 0 || keys > ledger._idempotency.Capacity)
                throw new InvalidDataException($"state holds {keys} idempotency keys; IdempotencyMaxKeys is {ledger._idempotency.Capacity}");
            for (int i = 0; i < keys; i++)
            {
                r.BaseStream.ReadExactly(buffer);
                var command = CommandCodec.Read(buffer);
                var result = new CommandResult { Code = (ResultCode)r.ReadByte(), Id = r.ReadInt64(), SecondaryId = r.ReadInt64() };
                ledger._idempotency.Add(command, result);
            }
            ledger._idempotency.RestoreCounters(evictedEarly, expired);
        }
        if (version >= FirstVersionWithFraud)
        {
            ledger._fraud = RamPay.Fraud.FraudState.Read(r, ledger._accounts.Length, ledger.Options.FraudModels);
            ledger._fraud.ReserveOpenAccounts(accounts);
            if (ledger._rulesVersion >= FraudStageRulesVersion) ledger._stage.Read(r, ledger._clockMs);
        }
        if (version >= FirstVersionWithRules) ledger._keyLog!.ReadHot(r, buffer);
        if (digest)
        {
            ledger._payments.ReadResident(r, payments);
            ReadNotes(r, ledger);
            AddHolds(ledger, holdIds);
        }
        if (stream.CanSeek && stream.Length - stream.Position >= 4) ReadRewards(r, ledger);
        if (stream.CanSeek && stream.Position != stream.Length) throw new InvalidDataException("trailing bytes after the ledger state");

        ledger.VerifyInvariants();
        return ledger;
    }

    private static void AddHolds(Ledger ledger, long[] ids)
    {
        foreach (long id in ids)
        {
            if (!ledger._payments.Contains(id) || !ledger._payments.IsResident(id)) throw new InvalidDataException($"open hold {id} is not among the payments");
            ledger._holds.Add(id);
        }
    }

    private static void ReadNotes(BinaryReader r, Ledger ledger)
    {
        int notes = r.ReadInt32();
        long payments = ledger._payments.Count;
        if (notes < 0 || notes > payments) throw new InvalidDataException($"state holds {notes} payment notes but only {payments} payments");
        ledger._notes.EnsureCapacity(notes);
        long previous = 0;
        for (int i = 0; i < notes; i++)
        {
            long id = r.ReadInt64();
            var bytes = new byte[r.ReadUInt16()];
            r.BaseStream.ReadExactly(bytes); // throws at the end of the stream, where BinaryReader.ReadBytes would return less
            if (id <= previous || id > payments) throw new InvalidDataException($"the note of payment {id} is out of order or beyond the payments");
            var note = DecodeNote(bytes) ?? throw new InvalidDataException($"the note of payment {id} is not a valid payment note");
            ledger._notes.Add(id, note);
            previous = id;
        }
    }

    private static void WriteInt128(BinaryWriter w, Int128 value)
    {
        w.Write((ulong)value);
        w.Write((long)(value >> 64));
    }

    private static Int128 ReadInt128(BinaryReader r)
    {
        ulong lo = r.ReadUInt64();
        long hi = r.ReadInt64();
        return ((Int128)hi << 64) | lo;
    }

    /// <summary>SHA-256 of <see cref="WriteState"/>'s bytes, as lower-case hex: equal hashes mean equal state.</summary>
    public string ComputeStateHash()
    {
        using var hashing = new HashingStream();
        // Not disposed: disposing a BufferedStream disposes the hash under it. Flushing is all it needs.
        var buffered = new BufferedStream(hashing, 1 << 16);
        WriteState(buffered, physical: false);
        buffered.Flush();
        return Convert.ToHexStringLower(hashing.Finish());
    }

    /// <summary>A write-only stream that hashes what is written to it, so hashing a large state needs no buffer.</summary>
    private sealed class HashingStream : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public byte[] Finish() => _hash.GetHashAndReset();
        public override void Write(byte[] buffer, int offset, int count) => _hash.AppendData(buffer, offset, count);
        public override void Write(ReadOnlySpan<byte> buffer) => _hash.AppendData(buffer);
        public override void WriteByte(byte value) => _hash.AppendData([value]);
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) _hash.Dispose(); base.Dispose(disposing); }
    }
}
