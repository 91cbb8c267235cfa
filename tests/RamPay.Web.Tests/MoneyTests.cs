using RamPay.Web.Services;

namespace RamPay.Web.Tests;

/// <summary>Amounts in major units to minor units and back, exactly, with ISO 4217's minor units (docs/web.md).</summary>
public sealed class MoneyTests
{
    [Theory]
    [InlineData("12.50", "USD", 1250)]
    [InlineData("12.5", "USD", 1250)]
    [InlineData("12", "USD", 1200)]
    [InlineData(".5", "USD", 50)]
    [InlineData("0.01", "USD", 1)]
    [InlineData(" 7.00 ", "EUR", 700)]
    [InlineData("1,234.56", "USD", 123456)]
    [InlineData("1,234,567", "USD", 123456700)]
    [InlineData("1500", "JPY", 1500)]
    [InlineData("1,500", "JPY", 1500)]
    [InlineData("1.005", "BHD", 1005)]
    [InlineData("1.5", "BHD", 1500)]
    [InlineData("0.001", "KWD", 1)]
    [InlineData("92233720368547758.07", "USD", long.MaxValue)]
    [InlineData("9223372036854775807", "JPY", long.MaxValue)]
    // 0.1 + 0.2 in floating point is 0.30000000000000004; here the digits are the digits.
    [InlineData("0.30", "USD", 30)]
    [InlineData("19.99", "USD", 1999)]
    [InlineData("1.1", "USD", 110)]
    public void Parses_major_units_into_exact_minor_units(string text, string currency, long minor)
    {
        Assert.True(Money.TryParse(text, currency, out long parsed, out string error), error);
        Assert.Equal(minor, parsed);
    }

    [Theory]
    [InlineData("", "USD", "Enter an amount.")]
    [InlineData("0", "USD", "more than zero")]
    [InlineData("0.00", "USD", "more than zero")]
    [InlineData("-5", "USD", "more than zero")]
    [InlineData("12.345", "USD", "USD has 2 decimal places at most.")]
    [InlineData("12.5", "JPY", "JPY has no minor unit: enter a whole amount.")]
    [InlineData("1.0001", "BHD", "BHD has 3 decimal places at most.")]
    [InlineData("1e3", "USD", "digits")]
    [InlineData("12,50", "USD", "digits")]
    [InlineData("1,23.00", "USD", "digits")]
    [InlineData("1.2.3", "USD", "digits")]
    [InlineData("$5", "USD", "digits")]
    [InlineData("NaN", "USD", "digits")]
    [InlineData("٣", "USD", "digits")] // an Arabic-Indic digit is not an ASCII digit
    [InlineData("92233720368547758.08", "USD", "too large")]
    [InlineData("99999999999999999999", "JPY", "too large")]
    public void Refuses_what_is_not_an_exact_positive_amount_of_the_currency_with_a_message(string text, string currency, string message)
    {
        Assert.False(Money.TryParse(text, currency, out long parsed, out string error));
        Assert.Equal(0, parsed);
        Assert.Contains(message, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1250, "USD", "12.50")]
    [InlineData(5, "USD", "0.05")]
    [InlineData(0, "USD", "0.00")]
    [InlineData(-2500, "USD", "-25.00")]
    [InlineData(123456789, "USD", "1,234,567.89")]
    [InlineData(1500, "JPY", "1,500")]
    [InlineData(1005, "BHD", "1.005")]
    [InlineData(7, "BHD", "0.007")]
    [InlineData(long.MaxValue, "USD", "92,233,720,368,547,758.07")]
    [InlineData(long.MinValue, "USD", "-92,233,720,368,547,758.08")]
    public void Formats_minor_units_with_the_currencys_decimals(long minor, string currency, string text)
    {
        Assert.Equal(text, Money.Format(minor, currency));
    }

    [Fact]
    public void Formatting_then_parsing_gives_back_the_same_minor_units_for_every_exponent()
    {
        var random = new Random(15);
        foreach (string currency in new[] { "JPY", "USD", "BHD", "CLF" })
            for (int i = 0; i < 2_000; i++)
            {
                long minor = random.NextInt64(1, long.MaxValue);
                Assert.True(Money.TryParse(Money.Format(minor, currency), currency, out long back, out string error), error);
                Assert.Equal(minor, back);
            }
    }

    [Fact]
    public void Minor_units_follow_ISO_4217()
    {
        Assert.Equal(0, Money.MinorUnits("JPY"));
        Assert.Equal(2, Money.MinorUnits("USD"));
        Assert.Equal(2, Money.MinorUnits("EUR"));
        Assert.Equal(3, Money.MinorUnits("BHD"));
        Assert.Equal(4, Money.MinorUnits("CLF"));
    }
}
