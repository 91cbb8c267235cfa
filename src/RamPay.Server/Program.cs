namespace RamPay.Server;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.WriteLine("rampay-server: under construction");
        return 0;
    }
}
