using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

/// <summary>Whatever arrives on the socket, the codec answers with a status, never an exception, and never a lie.</summary>
public class GarbageTests
{
    private static readonly ProtocolLimits Limits = new(maxBodyBytes: 64 * 1024, maxCommandsPerBatch: 256);
    private static readonly WireCommand[] Commands = new WireCommand[Limits.MaxCommandsPerBatch];
    private static readonly WireResult[] Results = new WireResult[Limits.MaxCommandsPerBatch];

    /// <summary>
    /// Runs the whole read path over <paramref name="bytes"/> and checks every claim of success against the raw
    /// bytes. Returns false on a broken promise; any exception fails the property too.
    /// </summary>
    private static bool DecodeEverything(byte[] bytes)
    {
        var reader = new FrameReader(bytes, Limits);
        int frames = 0;
        while (reader.TryRead(out Frame frame))
        {
            if (++frames > bytes.Length / FrameHeader.Size) return false; // each frame takes at least a header
            if (frame.Body.Length != frame.Header.BodyLengthBytes) return false;
            switch (frame.Type)
            {
                case FrameType.CommandBatch:
                    if (FrameCodec.TryReadCommandBatch(frame.Body, Limits, Commands, out int commands, out _)
                        && (commands < 1 || frame.Body.Length != 8 + commands * WireCommand.Size || BinaryPrimitives.ReadUInt32LittleEndian(frame.Body) != commands))
                        return false;
                    break;
                case FrameType.ResultBatch:
                    if (FrameCodec.TryReadResultBatch(frame.Body, Limits, Results, out int results, out _)
                        && (results < 1 || frame.Body.Length != 8 + results * WireResult.Size || BinaryPrimitives.ReadUInt32LittleEndian(frame.Body) != results))
                        return false;
                    break;
                case FrameType.Hello:
                    if (FrameCodec.TryReadHello(frame.Body, out ReadOnlySpan<byte> token, out ReadOnlySpan<byte> name, out _)
                        && 8 + token.Length + name.Length != frame.Body.Length)
                        return false;
                    break;
                case FrameType.Welcome:
                    FrameCodec.TryReadWelcome(frame.Body, out _, out _, out _);
                    break;
                case FrameType.Error:
                    if (FrameCodec.TryReadError(frame.Body, out ErrorBody error, out _) && 12 + error.MessageUtf8.Length != frame.Body.Length)
                        return false;
                    break;
            }
        }
        // A refusal always carries a code, and a framing error never sits on an empty buffer tail.
        return reader.Status != FrameStatus.Invalid || !reader.Error.IsNone;
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        Prop.ForAll(Arb.From(Gens.Bytes), DecodeEverything).Check(Gens.Config(2_000, seed: 0x6A4BA6E));
    }

    /// <summary>Random bytes behind a plausible header, so the body readers, not the magic check, meet the garbage.</summary>
    [Fact]
    public void Random_bodies_behind_valid_headers_never_throw_or_pass_with_a_wrong_length()
    {
        var gen =
            from type in Gen.Choose(1, 7)
            from count in Gen.Choose(0, 4)
            from exactLength in Gen.Elements(true, false)
            from body in Gens.Bytes
            select Framed((FrameType)type, count, exactLength, body);
        Prop.ForAll(Arb.From(gen), DecodeEverything).Check(Gens.Config(3_000, seed: 0xB0D1E5));

        static byte[] Framed(FrameType type, int count, bool batchShaped, byte[] body)
        {
            if (batchShaped && body.Length >= 8) BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)count);
            var frame = new byte[FrameHeader.Size + body.Length];
            new FrameHeader(type, body.Length, 1).Write(frame);
            body.CopyTo(frame, FrameHeader.Size);
            return frame;
        }
    }

    /// <summary>Valid batches with a few bytes overwritten: each is either refused or decodes to what the bytes say.</summary>
    [Fact]
    public void Mutated_batches_never_throw_or_pass_with_a_wrong_length()
    {
        var gen =
            from commands in Gens.Batch(Gens.Command, 6)
            from edits in Gen.ArrayOf(Gen.Two(Gen.Choose(0, 1_000)), 3)
            select Mutated(Frames.CommandBatch(1, commands), edits);
        Prop.ForAll(Arb.From(gen), DecodeEverything).Check(Gens.Config(2_000, seed: 0x3D17));

        static byte[] Mutated(byte[] frame, (int, int)[] edits)
        {
            foreach (var (position, value) in edits) frame[position % frame.Length] = (byte)value;
            return frame;
        }
    }
}
