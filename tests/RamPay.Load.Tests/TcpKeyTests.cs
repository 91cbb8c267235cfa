using RamPay.Core;

namespace RamPay.Load.Tests;

public sealed class TcpKeyTests
{
    [Fact]
    public void Keys_differ_for_every_payment_of_a_run_and_are_never_the_empty_key()
    {
        var keys = new HashSet<IdempotencyKey>();
        const ulong NonceHi = 0x1234_5678_9ABC_DEF1, NonceLo = 0x0FED_CBA9_8765_4321;
        for (int connection = 0; connection < 8; connection++)
            for (long frame = 1; frame <= 500; frame++)
                for (int index = 0; index < 50; index++)
                {
                    IdempotencyKey key = TcpLoad.KeyOf(NonceHi, NonceLo, batch: 50, connection, frame, index);
                    Assert.False(key.IsEmpty);
                    Assert.True(keys.Add(key), $"connection {connection} frame {frame} index {index} repeats a key");
                }
    }
}
