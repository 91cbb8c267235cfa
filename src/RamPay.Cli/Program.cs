using RamPay.Cli;

return RampayCli.Run(args, Console.Out);
