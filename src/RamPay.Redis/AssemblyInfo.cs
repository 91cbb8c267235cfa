using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("RamPay.Redis.Tests")]
