using System.Runtime.CompilerServices;

// Tests compare the hardware CRC path with the software table, which stays internal.
[assembly: InternalsVisibleTo("RamPay.Journal.Tests")]
