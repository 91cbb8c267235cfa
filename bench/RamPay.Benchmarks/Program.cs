using BenchmarkDotNet.Running;

// Every benchmark class in this assembly; pick with --filter, e.g.
//   dotnet run -c Release --project bench/RamPay.Benchmarks -- --filter '*RingBuffer*'
// Issue 16's 70 % figure, the four engine cases interleaved round by round (FraudStageBenchmarks.cs; docs/benchmarks.md):
if (args is ["--fraud-stage-interleaved", ..]) { RamPay.Benchmarks.EngineFraudStageBenchmarks.RunInterleaved(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 7, Console.Out); return; }
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
