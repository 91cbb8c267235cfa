using System.CommandLine;
using RamPay.Cli;

return RampayCli.Build(Console.Out).Parse(args).Invoke();
