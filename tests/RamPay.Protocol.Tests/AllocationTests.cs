using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

/// <summary>The batch hot path must not allocate: a server decodes and encodes hundreds of thousands of these a second.</summary>
public class AllocationTests
{
    [Fact]
    public void Encoding_and_decoding_a_1000_command_batch_allocates_nothing_after_warm_up()
    {
        const int Count = 1_000;
        ProtocolLimits limits = ProtocolLimits.Default;
        var commands = new WireCommand[Count];
        for (int i = 0; i < Count; i++) commands[i] = Frames.Transfer(i + 1, i + 2, i + 3, "key-" + i);
        var results = new WireResult[Count];
        var commandsIn = new WireCommand[limits.MaxCommandsPerBatch];
        var resultsIn = new WireResult[limits.MaxCommandsPerBatch];
        var commandFrame = new byte[FrameCodec.SizeOfCommandBatch(Count)];
        var resultFrame = new byte[FrameCodec.SizeOfResultBatch(Count)];

        RoundTrip(); // warm-up: JIT, static constructors
        long before = GC.GetAllocatedBytesForCurrentThread();
        long checksum = 0;
        for (int i = 0; i < 10; i++) checksum += RoundTrip();
        long allocatedBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocatedBytes);
        Assert.Equal(10L * Count * 2, checksum);

        long RoundTrip()
        {
            FrameCodec.WriteCommandBatch(commandFrame, 1, commands);
            var reader = new FrameReader(commandFrame, limits);
            Invariant.Check(reader.TryRead(out Frame frame), "batch frame");
            Invariant.Check(FrameCodec.TryReadCommandBatch(frame.Body, limits, commandsIn, out int n, out _), "batch body");
            long sum = 0;
            for (int i = 0; i < n; i++)
            {
                Command c = WireCommand.ToCommand(commandsIn[i], clientId: 1);
                results[i] = new WireResult(ResultCode.Ok, false, c.Amount);
                sum++;
            }
            FrameCodec.WriteResultBatch(resultFrame, frame.RequestId, results.AsSpan(0, n));
            reader = new FrameReader(resultFrame, limits);
            Invariant.Check(reader.TryRead(out frame), "result frame");
            Invariant.Check(FrameCodec.TryReadResultBatch(frame.Body, limits, resultsIn, out int m, out _), "result body");
            return sum + m;
        }
    }
}
