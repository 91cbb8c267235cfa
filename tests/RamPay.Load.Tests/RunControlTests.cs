namespace RamPay.Load.Tests;

public sealed class RunControlTests
{
    [Fact]
    public async Task A_count_is_handed_out_exactly_once_across_concurrent_senders()
    {
        var run = new RunControl(new LoadOptions { Count = 100_003, WarmupSeconds = 0 });
        long[] taken = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            long sum = 0;
            int n;
            while ((n = run.Take(100)) > 0) sum += n;
            return sum;
        })));
        Assert.Equal(100_003, taken.Sum());
    }

    [Fact]
    public void A_stop_request_ends_the_run()
    {
        var run = new RunControl(new LoadOptions { DurationSeconds = 3600, WarmupSeconds = 0 });
        Assert.Equal(10, run.Take(10));
        run.RequestStop();
        Assert.Equal(0, run.Take(10));
    }

    [Fact]
    public void Warm_up_sends_are_not_measured_and_do_not_use_the_count()
    {
        var run = new RunControl(new LoadOptions { Count = 5, WarmupSeconds = 3600 });
        for (int i = 0; i < 10; i++) Assert.Equal(7, run.Take(7));
        Assert.False(run.IsMeasured(System.Diagnostics.Stopwatch.GetTimestamp()));
    }
}
