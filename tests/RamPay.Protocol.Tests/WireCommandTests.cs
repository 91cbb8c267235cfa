using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

public class WireCommandTests
{
    [Fact]
    public void ToCommand_maps_every_field_and_takes_the_client_id_from_the_connection()
    {
        var wire = new WireCommand
        {
            Type = CommandType.Authorize, Currency = Currency.EUR, Key = new IdempotencyKey(11, 12),
            FromAccount = 21, ToAccount = 22, PaymentId = 23, Amount = 24, HoldTimeoutMs = 25,
        };
        Command c = WireCommand.ToCommand(wire, clientId: 99);
        Assert.Equal(CommandType.Authorize, c.Type);
        Assert.Equal(Currency.EUR, c.Currency);
        Assert.Equal(new IdempotencyKey(11, 12), c.Key);
        Assert.Equal((21L, 22L, 23L, 24L, 25L), (c.FromAccount, c.ToAccount, c.PaymentId, c.Amount, c.Argument));
        Assert.Equal(99, c.ClientId);
        Assert.Equal(0, c.TimestampMs); // the engine stamps it
        Assert.Equal(0, c.Flags);
        Assert.Equal(7, WireCommand.ToCommand(wire, clientId: 7).ClientId);
    }

    [Fact]
    public void ToCommand_refuses_a_type_that_skipped_validation_and_a_missing_client_id()
    {
        var wire = new WireCommand { Type = CommandType.OpenAccount };
        Assert.Throws<InvariantViolationException>(() => WireCommand.ToCommand(wire, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => WireCommand.ToCommand(wire with { Type = CommandType.Deposit }, 0));
    }

    [Fact]
    public void Every_wire_type_maps_to_the_same_engine_type()
    {
        foreach (CommandType type in Gens.WireTypes)
        {
            Assert.True(WireCommand.IsAllowedType(type));
            Assert.Equal(type, WireCommand.ToCommand(new WireCommand { Type = type }, 1).Type);
        }
        Assert.Equal(6, Enum.GetValues<CommandType>().Count(WireCommand.IsAllowedType));
    }

    [Fact]
    public void Wire_results_convert_to_and_from_engine_results()
    {
        var engine = new CommandResult { Code = ResultCode.AmountExceedsCaptured, Replayed = true, Id = 17 };
        WireResult wire = WireResult.From(engine);
        Assert.Equal(new WireResult(ResultCode.AmountExceedsCaptured, true, 17), wire);
        Assert.Equal(engine, wire.ToCommandResult());
    }

    [Fact]
    public void Limits_refuse_configurations_that_cannot_carry_their_own_frames()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits(maxCommandsPerBatch: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits(maxBodyBytes: 1_000, maxCommandsPerBatch: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits(maxBodyBytes: 1 << 20, maxCommandsPerBatch: 20_000));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits(maxBodyBytes: ProtocolLimits.HardMaxBodyBytes + 1));
        var big = new ProtocolLimits(ProtocolLimits.HardMaxBodyBytes, ProtocolLimits.HardMaxCommandsPerBatch);
        Assert.Equal(ProtocolLimits.HardMaxBodyBytes + FrameHeader.Size, big.MaxFrameBytes);
        Assert.Equal((1 << 20, 8_192), (ProtocolLimits.Default.MaxBodyBytes, ProtocolLimits.Default.MaxCommandsPerBatch));
    }

    [Fact]
    public void Error_close_policy_matches_the_docs()
    {
        ProtocolErrorCode[] keep = [ProtocolErrorCode.MalformedBody, ProtocolErrorCode.AlreadyAuthenticated, ProtocolErrorCode.ServerBusy, ProtocolErrorCode.RateLimited];
        foreach (ProtocolErrorCode code in Enum.GetValues<ProtocolErrorCode>().Where(c => c != ProtocolErrorCode.None))
            Assert.Equal(!keep.Contains(code), ProtocolErrorCodes.ClosesConnection(code));
    }
}
