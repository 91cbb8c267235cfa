using System.Diagnostics;
using System.Diagnostics.Metrics;
using RamPay.Core;
using RamPay.Protocol;

namespace RamPay.Server.Observability;

/// <summary>
/// The server's own traces and the counters recorded where their events happen (TCP). Everything here costs a
/// null check or an allocation-free counter add when nobody listens; none of it runs on the engine's writer thread.
/// </summary>
public static class RamPayTelemetry
{
    /// <summary>The traces of this server: one span per engine submission, from submit to durable completion.</summary>
    public const string ActivitySourceName = "RamPay.Server";
    /// <summary>The meter of the TCP counters.</summary>
    public const string TcpMeterName = "RamPay.Tcp";
    /// <summary>The engine span's name (a child of the HTTP request's span, or a root span for a TCP frame).</summary>
    public const string EngineSpanName = "rampay.engine";

    public static readonly ActivitySource Source = new(ActivitySourceName);

    private static readonly Meter TcpMeter = new(TcpMeterName);
    private static readonly Counter<long> FramesReceived = TcpMeter.CreateCounter<long>("rampay_tcp_frames_received_total",
        description: "TCP frames received, by frame type (hello, command_batch, ping, or invalid for a frame refused before its type was known).");
    private static readonly Counter<long> FramesSent = TcpMeter.CreateCounter<long>("rampay_tcp_frames_sent_total",
        description: "TCP frames sent, by frame type (welcome, result_batch, error, pong).");
    private static readonly Counter<long> CommandsReceived = TcpMeter.CreateCounter<long>("rampay_tcp_commands_received_total",
        description: "Commands received in TCP command batches (submitted to the engine or refused at ingress).");

    // One boxed tag per frame type, made once: adding with a tag then allocates nothing.
    private static readonly KeyValuePair<string, object?>[] FrameTags = MakeFrameTags();
    private static readonly string[] CommandTypeNames = MakeNames<CommandType>();

    private static KeyValuePair<string, object?>[] MakeFrameTags()
    {
        var tags = new KeyValuePair<string, object?>[256];
        for (int i = 0; i < tags.Length; i++)
            tags[i] = new("type", Enum.IsDefined((FrameType)i) ? Snake(((FrameType)i).ToString()) : "invalid");
        return tags;
    }

    private static string[] MakeNames<T>() where T : struct, Enum
    {
        var names = new string[256];
        for (int i = 0; i < names.Length; i++)
        {
            var value = (T)Enum.ToObject(typeof(T), i);
            names[i] = Enum.IsDefined(value) ? Snake(value.ToString()) : i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return names;
    }

    /// <summary>CommandBatch → command_batch: Prometheus labels and span tags in the style of the API's codes.</summary>
    internal static string Snake(string pascal)
    {
        var text = new System.Text.StringBuilder(pascal.Length + 4);
        for (int i = 0; i < pascal.Length; i++)
        {
            if (char.IsUpper(pascal[i]) && i > 0) text.Append('_');
            text.Append(char.ToLowerInvariant(pascal[i]));
        }
        return text.ToString();
    }

    /// <summary>The label value of a command type (transfer, open_account, ...).</summary>
    public static string CommandTypeName(CommandType type) => CommandTypeNames[(int)type];

    public static void TcpFrameReceived(FrameType type) => FramesReceived.Add(1, FrameTags[(int)type]);
    public static void TcpFrameSent(FrameType type) => FramesSent.Add(1, FrameTags[(int)type]);
    public static void TcpCommandsReceived(int count) => CommandsReceived.Add(count);

    /// <summary>
    /// Starts the span of one engine submission (null when nobody records traces). It is not made the current
    /// activity: its end is on whichever flow awaits the durable completion (for TCP, the connection's writer loop),
    /// and later submissions on the submitting flow must not become its children.
    /// </summary>
    public static Activity? StartEngineSpan(CommandType type, int count)
    {
        if (!Source.HasListeners()) return null;
        var previous = Activity.Current;
        var activity = Source.StartActivity(EngineSpanName, ActivityKind.Internal);
        if (activity is null) return null;
        Activity.Current = previous;
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("rampay.command.type", CommandTypeName(type));
            activity.SetTag("rampay.command.count", count);
        }
        return activity;
    }

    /// <summary>Ends an engine span at the durable completion (or the failure) of what it submitted.</summary>
    public static void EndEngineSpan(Activity activity, long journalSequence, in CommandResult first, Exception? error)
    {
        if (activity.IsAllDataRequested)
        {
            if (error is null)
            {
                activity.SetTag("rampay.journal.sequence", journalSequence);
                activity.SetTag("rampay.result", ResultCodes.Name(first.Code));
            }
            else
            {
                activity.SetStatus(ActivityStatusCode.Error, error.Message);
            }
        }
        var current = Activity.Current;
        activity.Stop();
        Activity.Current = current; // Stop may reset the flow's current activity; this span never was it
    }
}
