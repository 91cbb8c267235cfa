using System.Runtime.CompilerServices;

// Tests compare the hardware CRC path with the software table, which stays internal.
[assembly: InternalsVisibleTo("RamPay.Journal.Tests")]
// The engine keeps fraud model files beside the journal and makes their directory entries durable the same way.
[assembly: InternalsVisibleTo("RamPay.Engine")]
// The event log's segment files (src/RamPay.Events) are fsynced, and their directory entries made durable, the same way.
[assembly: InternalsVisibleTo("RamPay.Events")]
