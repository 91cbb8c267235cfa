namespace RamPay.Journal;

/// <summary>Receives journal records in sequence order. The payload is only valid during the call.</summary>
public interface IRecordVisitor
{
    void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload);
}
