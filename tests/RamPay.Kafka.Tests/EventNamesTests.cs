using System.Text;
using RamPay.Core;
using RamPay.Kafka;

namespace RamPay.Kafka.Tests;

/// <summary>Events name kinds and statuses exactly as the API and the rows do (one list: PaymentNames).</summary>
public class EventNamesTests
{
    [Fact]
    public void Every_payment_status_has_the_api_name_in_events()
    {
        foreach (var status in Enum.GetValues<PaymentStatus>())
            Assert.Equal(PaymentNames.Status(status), Encoding.UTF8.GetString(EventEncoder.StatusName(status)));
        Assert.Equal("declined", Encoding.UTF8.GetString(EventEncoder.StatusName(PaymentStatus.Declined)));
        Assert.Equal("unknown", Encoding.UTF8.GetString(EventEncoder.StatusName((PaymentStatus)200)));
    }
}
