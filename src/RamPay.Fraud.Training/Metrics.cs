namespace RamPay.Fraud.Training;

/// <summary>What flagging every score at or above a threshold gives.</summary>
public readonly record struct ThresholdMetrics(double Threshold, double Precision, double Recall, double FalsePositiveRate, int TruePositives, int FalsePositives);

/// <summary>Ranking and threshold metrics of a binary classifier's scores against labels (1 = fraud).</summary>
public static class Metrics
{
    /// <summary>Area under the ROC curve: the chance a random fraud scores above a random legitimate payment (ties count half).</summary>
    public static double RocAuc(ReadOnlySpan<double> scores, ReadOnlySpan<byte> labels)
    {
        var order = Order(scores, descending: false);
        long positives = 0, negatives = 0;
        double positiveRankSum = 0;
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j < order.Length && scores[order[j]] == scores[order[i]]) j++;
            double rank = (i + 1 + j) / 2.0; // average of ranks i+1..j
            for (int k = i; k < j; k++)
            {
                if (labels[order[k]] == 1) { positives++; positiveRankSum += rank; }
                else negatives++;
            }
            i = j;
        }
        if (positives == 0 || negatives == 0) return double.NaN;
        return (positiveRankSum - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
    }

    /// <summary>Area under the precision-recall curve as average precision: Σ (Rₖ − Rₖ₋₁) Pₖ over the distinct scores, highest first.</summary>
    public static double AveragePrecision(ReadOnlySpan<double> scores, ReadOnlySpan<byte> labels)
    {
        int positives = 0;
        foreach (byte l in labels) positives += l;
        if (positives == 0) return double.NaN;
        var order = Order(scores, descending: true);
        int tp = 0, fp = 0;
        double ap = 0, previousRecall = 0;
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j < order.Length && scores[order[j]] == scores[order[i]]) j++;
            for (int k = i; k < j; k++) { if (labels[order[k]] == 1) tp++; else fp++; }
            double recall = tp / (double)positives;
            ap += (recall - previousRecall) * (tp / (double)(tp + fp));
            previousRecall = recall;
            i = j;
        }
        return ap;
    }

    public static ThresholdMetrics AtThreshold(ReadOnlySpan<double> scores, ReadOnlySpan<byte> labels, double threshold)
    {
        int tp = 0, fp = 0, positives = 0, negatives = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            bool flagged = scores[i] >= threshold;
            if (labels[i] == 1) { positives++; if (flagged) tp++; }
            else { negatives++; if (flagged) fp++; }
        }
        return Make(threshold, tp, fp, positives, negatives);
    }

    /// <summary>The best recall whose false positive rate is at most <paramref name="maxFalsePositiveRate"/>, and its threshold (+∞: flag nothing).</summary>
    public static ThresholdMetrics AtFalsePositiveRate(ReadOnlySpan<double> scores, ReadOnlySpan<byte> labels, double maxFalsePositiveRate)
    {
        int positives = 0;
        foreach (byte l in labels) positives += l;
        int negatives = labels.Length - positives;
        var order = Order(scores, descending: true);
        int tp = 0, fp = 0;
        var best = Make(double.PositiveInfinity, 0, 0, positives, negatives);
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j < order.Length && scores[order[j]] == scores[order[i]]) j++;
            for (int k = i; k < j; k++) { if (labels[order[k]] == 1) tp++; else fp++; }
            if (negatives > 0 && fp / (double)negatives > maxFalsePositiveRate) break;
            best = Make(scores[order[i]], tp, fp, positives, negatives);
            i = j;
        }
        return best;
    }

    private static ThresholdMetrics Make(double threshold, int tp, int fp, int positives, int negatives) =>
        new(threshold, tp + fp == 0 ? double.NaN : tp / (double)(tp + fp), positives == 0 ? double.NaN : tp / (double)positives,
            negatives == 0 ? double.NaN : fp / (double)negatives, tp, fp);

    private static int[] Order(ReadOnlySpan<double> scores, bool descending)
    {
        var keys = scores.ToArray();
        var order = new int[keys.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        // Stable on index for equal scores; only groups of equal scores matter to the callers.
        Array.Sort(order, (a, b) =>
        {
            int c = keys[a].CompareTo(keys[b]);
            if (descending) c = -c;
            return c != 0 ? c : a.CompareTo(b);
        });
        return order;
    }
}
