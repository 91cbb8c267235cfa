namespace RamPay.Fraud.Training;

public sealed record LogisticRegressionOptions
{
    /// <summary>L2 penalty on the weights (not the bias), per training row: the objective is mean log-loss + l2/2 · |w|².</summary>
    public double L2 { get; init; } = 1e-4;
    public int MaxIterations { get; init; } = 50;
    /// <summary>Newton steps stop when no coordinate moves more than this.</summary>
    public double Tolerance { get; init; } = 1e-9;
}

/// <summary>
/// Logistic regression by Newton's method (iteratively reweighted least squares) on standardized features, with an L2
/// penalty, solved by Cholesky each step. With twenty-odd features the Hessian is tiny, so a handful of full-batch
/// steps converge exactly, with no learning rate to tune and no randomness: the same rows give the same weights.
/// </summary>
public static class LogisticRegressionTrainer
{
    public static FraudModel Train(LabelledSet data, int[] rows, string version, string schemaId, LogisticRegressionOptions? options = null,
        IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        options ??= new LogisticRegressionOptions();
        int d = data.FeatureCount, n = rows.Length;
        if (n == 0) throw new ArgumentException("no training rows");

        // Standardization: mean and standard deviation of each feature over the training rows (scale 1 when constant).
        var mean = new double[d];
        var scale = new double[d];
        foreach (int i in rows) { var x = data.Row(i); for (int j = 0; j < d; j++) mean[j] += x[j]; }
        for (int j = 0; j < d; j++) mean[j] /= n;
        foreach (int i in rows) { var x = data.Row(i); for (int j = 0; j < d; j++) scale[j] += (x[j] - mean[j]) * (x[j] - mean[j]); }
        for (int j = 0; j < d; j++) { double sd = Math.Sqrt(scale[j] / n); scale[j] = sd > 1e-9 ? sd : 1; }

        var z = new double[n * d];
        for (int r = 0; r < n; r++)
        {
            var x = data.Row(rows[r]);
            for (int j = 0; j < d; j++) z[r * d + j] = (x[j] - mean[j]) / scale[j];
        }

        int m = d + 1; // weights, then the bias
        var w = new double[m];
        double prior = Math.Clamp(data.Positives(rows) / (double)n, 1e-6, 1 - 1e-6);
        w[d] = DetMath.Log(prior / (1 - prior));
        var gradient = new double[m];
        var hessian = new double[m * m];
        int iterations = 0;
        for (; iterations < options.MaxIterations; iterations++)
        {
            Array.Clear(gradient);
            Array.Clear(hessian);
            for (int r = 0; r < n; r++)
            {
                var x = z.AsSpan(r * d, d);
                double logit = w[d];
                for (int j = 0; j < d; j++) logit += w[j] * x[j];
                double p = DetMath.Sigmoid(logit);
                double g = p - data.Label[rows[r]];
                double h = Math.Max(p * (1 - p), 1e-12);
                for (int j = 0; j < d; j++)
                {
                    gradient[j] += g * x[j];
                    double hx = h * x[j];
                    for (int k = 0; k <= j; k++) hessian[j * m + k] += hx * x[k];
                    hessian[d * m + j] += hx;
                }
                gradient[d] += g;
                hessian[d * m + d] += h;
            }
            for (int j = 0; j < m; j++)
            {
                gradient[j] /= n;
                for (int k = 0; k <= j; k++) hessian[j * m + k] /= n;
            }
            // The penalty on the weights (not on the bias, whose row is d).
            for (int j = 0; j < d; j++)
            {
                gradient[j] += options.L2 * w[j];
                hessian[j * m + j] += options.L2;
            }
            // Only the lower triangle is filled (rows j, columns k <= j; the bias is row d): all Cholesky reads.
            var step = CholeskySolve(hessian, gradient, m);
            // Backtracking: a full Newton step can overshoot far from the optimum (nearly separable data); halve it
            // until the penalized loss goes down.
            double before = Objective(z, data.Label, rows, w, d, options.L2);
            var trial = new double[m];
            double factor = 1;
            for (int halvings = 0; halvings < 40; halvings++, factor /= 2)
            {
                for (int j = 0; j < m; j++) trial[j] = w[j] - factor * step[j];
                if (Objective(z, data.Label, rows, trial, d, options.L2) <= before) break;
            }
            double largest = 0;
            for (int j = 0; j < m; j++)
            {
                largest = Math.Max(largest, Math.Abs(w[j] - trial[j]));
                w[j] = trial[j];
            }
            if (largest < options.Tolerance) { iterations++; break; }
        }

        var meta = new List<KeyValuePair<string, string>>
        {
            new("algorithm", "logistic regression, Newton (IRLS) with L2"),
            new("l2", options.L2.ToString("R", System.Globalization.CultureInfo.InvariantCulture)),
            new("newton_iterations", iterations.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new("training_rows", n.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        };
        if (metadata is not null) meta.AddRange(metadata);
        return FraudModel.CreateLogistic(version, schemaId, w[d], mean, scale, w[..d], meta);
    }

    /// <summary>Mean log-loss plus l2/2 · |w|² (the bias, w[d], is not penalized).</summary>
    private static double Objective(double[] z, byte[] labels, int[] rows, double[] w, int d, double l2)
    {
        double loss = 0;
        for (int r = 0; r < rows.Length; r++)
        {
            double logit = w[d];
            for (int j = 0; j < d; j++) logit += w[j] * z[r * d + j];
            // log(1 + e^logit) − y·logit, stably.
            double softplus = logit > 0 ? logit + DetMath.Log(1 + DetMath.Exp(-logit)) : DetMath.Log(1 + DetMath.Exp(logit));
            loss += softplus - labels[rows[r]] * logit;
        }
        double penalty = 0;
        for (int j = 0; j < d; j++) penalty += w[j] * w[j];
        return loss / rows.Length + l2 / 2 * penalty;
    }

    /// <summary>Solves A x = b for a symmetric positive definite A given by its lower triangle (row-major, m × m).</summary>
    internal static double[] CholeskySolve(double[] a, double[] b, int m)
    {
        var l = new double[m * m];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double sum = a[i * m + j];
                for (int k = 0; k < j; k++) sum -= l[i * m + k] * l[j * m + k];
                if (i == j)
                {
                    // A tiny ridge keeps a nearly singular Hessian (a feature constant on the training rows) solvable.
                    l[i * m + i] = Math.Sqrt(Math.Max(sum, 1e-12));
                }
                else
                {
                    l[i * m + j] = sum / l[j * m + j];
                }
            }
        }
        var y = new double[m];
        for (int i = 0; i < m; i++)
        {
            double sum = b[i];
            for (int k = 0; k < i; k++) sum -= l[i * m + k] * y[k];
            y[i] = sum / l[i * m + i];
        }
        var x = new double[m];
        for (int i = m - 1; i >= 0; i--)
        {
            double sum = y[i];
            for (int k = i + 1; k < m; k++) sum -= l[k * m + i] * x[k];
            x[i] = sum / l[i * m + i];
        }
        return x;
    }
}
