using System.Text;
using System.Text.Json;

namespace RamPay.Kafka.Tests;

public class JsonBufferTests
{
    [Theory]
    [InlineData("plain")]
    [InlineData("")]
    [InlineData("quote \" backslash \\ slash /")]
    [InlineData("control \u0001 tab \t newline \n nul \0 del \u007f")]
    [InlineData("Åsa Ñandú 日本語 emoji 🎉")]
    [InlineData("<script>&amp;'+`")]
    [InlineData("\u2028 \u2029 line separators")]
    public void Text_round_trips_through_a_json_parser(string text)
    {
        var json = new JsonBuffer(4);
        json.Raw("{\"t\":"u8);
        json.Text(text);
        json.Raw("}"u8);
        using var doc = JsonDocument.Parse(json.Written.ToArray());
        Assert.Equal(text, doc.RootElement.GetProperty("t").GetString());
    }

    [Fact]
    public void Long_text_is_escaped_through_a_rented_buffer_and_non_ascii_stays_utf8()
    {
        string text = string.Concat(Enumerable.Repeat("é\"x", 2_000));
        var json = new JsonBuffer(16);
        json.Text(text);
        string written = Encoding.UTF8.GetString(json.Written);
        Assert.Equal(text, JsonSerializer.Deserialize<string>(written));
        Assert.Contains("é", written, StringComparison.Ordinal); // relaxed escaping: readable UTF-8, not \u00e9
    }

    [Fact]
    public void Numbers_times_booleans_and_plain_text_are_written_as_json()
    {
        var json = new JsonBuffer(1);
        json.Raw("["u8);
        json.Number(long.MinValue);
        json.Raw(","u8);
        json.Number(0);
        json.Raw(","u8);
        json.Boolean(true);
        json.Raw(","u8);
        json.Time(0);
        json.Raw(","u8);
        json.Time(1_700_000_000_007);
        json.Raw(","u8);
        json.Plain("USD"u8);
        json.Raw("]"u8);
        Assert.Equal("""[-9223372036854775808,0,true,"1970-01-01T00:00:00.000Z","2023-11-14T22:13:20.007Z","USD"]""", Encoding.UTF8.GetString(json.Written));
        json.Clear();
        Assert.Equal(0, json.Written.Length);
    }

    [Fact]
    public void Times_are_formatted_as_the_framework_formats_them()
    {
        var rng = new Random(5);
        long[] times = [0, 1, -1, 999, 1_700_000_000_007, 951_782_400_000 /* 2000-02-29 */, DateTimeOffset.MaxValue.ToUnixTimeMilliseconds(), DateTimeOffset.MinValue.ToUnixTimeMilliseconds()];
        Span<byte> text = stackalloc byte[26];
        foreach (long ms in times.Concat(Enumerable.Range(0, 10_000).Select(_ => rng.NextInt64(-62_135_596_800_000, 253_402_300_799_999))))
        {
            JsonBuffer.FormatTime(ms, text);
            string expected = "\"" + DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fff'Z'", System.Globalization.CultureInfo.InvariantCulture) + "\"";
            Assert.Equal(expected, Encoding.ASCII.GetString(text));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => JsonBuffer.FormatTime(long.MaxValue, new byte[26]));
        // The one-time cache: a repeated time, then another.
        var json = new JsonBuffer();
        json.Time(5);
        json.Time(5);
        json.Time(6);
        Assert.Equal("\"1970-01-01T00:00:00.005Z\"\"1970-01-01T00:00:00.005Z\"\"1970-01-01T00:00:00.006Z\"", Encoding.UTF8.GetString(json.Written));
    }
}
