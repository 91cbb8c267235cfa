using System.Globalization;
using Npgsql;

namespace RamPay.Postgres.Tests;

/// <summary>
/// A database of its own on the test PostgreSQL (<c>rampay_t_&lt;random&gt;</c>), created through the role of
/// <see cref="EnvironmentVariable"/> (or <see cref="DefaultConnection"/>) and dropped with <c>WITH (FORCE)</c> at the
/// end, so tests run in parallel without seeing each other's rows. An unreachable server fails the test with a
/// message that says where it looked: these tests never skip.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    public const string EnvironmentVariable = "RAMPAY_TEST_POSTGRES";
    public const string DefaultConnection = "Host=127.0.0.1;Port=5432;Username=rampay;Password=rampay;Database=rampay_test";

    private TestDatabase(string name, string connectionString)
    {
        Name = name;
        ConnectionString = connectionString;
        // The tests' own reads go without the pool: a backend the tests terminated must not come back to them.
        DirectConnectionString = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;
    }

    public string Name { get; }

    /// <summary>For the code under test (the sink, the CLI, the server): pooled, as in production.</summary>
    public string ConnectionString { get; }

    /// <summary>For the tests' own queries: no pooling.</summary>
    public string DirectConnectionString { get; }

    /// <summary>The connection the tests administer databases through (CREATE, DROP, ALTER ... ALLOW_CONNECTIONS).</summary>
    public static string AdminConnectionString =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } s ? s : DefaultConnection;

    public static async Task<TestDatabase> CreateAsync()
    {
        string name = "rampay_t_" + Guid.NewGuid().ToString("N")[..16];
        await using (var admin = await OpenAdminAsync())
            await ExecuteAsync(admin, $"CREATE DATABASE {name}");
        var builder = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name };
        return new TestDatabase(name, builder.ConnectionString);
    }

    /// <summary>Opens the admin connection, or fails saying which server could not be reached and how to point the tests elsewhere.</summary>
    public static async Task<NpgsqlConnection> OpenAdminAsync()
    {
        var builder = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Pooling = false, Timeout = 10 };
        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync();
            return connection;
        }
        catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            await connection.DisposeAsync();
            string from = Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } ? $"${EnvironmentVariable}" : $"the default (${EnvironmentVariable} is not set)";
            throw new InvalidOperationException(
                $"PostgreSQL is unreachable at Host={builder.Host};Port={builder.Port};Database={builder.Database};Username={builder.Username} " +
                $"(from {from}): {e.Message}. These tests need a real PostgreSQL: start it (scripts/test.sh does) or set ${EnvironmentVariable}.", e);
        }
    }

    public async Task<NpgsqlConnection> OpenAsync()
    {
        var connection = new NpgsqlConnection(DirectConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    public async Task<long> ScalarAsync(string sql)
    {
        await using var connection = await OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    public async Task<int> ExecuteAsync(string sql)
    {
        await using var connection = await OpenAsync();
        return await ExecuteAsync(connection, sql);
    }

    /// <summary>Every row of a query, each as its columns' values.</summary>
    public async Task<List<object?[]>> RowsAsync(string sql)
    {
        await using var connection = await OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<object?[]>();
        while (await reader.ReadAsync())
        {
            var row = new object?[reader.FieldCount];
            for (int i = 0; i < row.Length; i++) row[i] = await reader.IsDBNullAsync(i) ? null : reader.GetValue(i);
            rows.Add(row);
        }
        return rows;
    }

    public static async Task<int> ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, connection);
        return await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Terminates every other client connection to this database (the sink's among them); returns how many, and how
    /// many were inside a transaction. Only client backends: an autovacuum worker on the database is a superuser's
    /// process, which the test role may not terminate (a CI run failed on exactly that).
    /// </summary>
    public async Task<(int Terminated, int InTransaction)> TerminateBackendsAsync()
    {
        await using var admin = await OpenAdminAsync();
        await using var cmd = new NpgsqlCommand("""
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)),
                   count(*) FILTER (WHERE state IN ('active', 'idle in transaction', 'idle in transaction (aborted)'))
            FROM pg_stat_activity WHERE datname = @db AND pid <> pg_backend_pid() AND backend_type = 'client backend'
            """, admin);
        cmd.Parameters.AddWithValue("db", Name);
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        return ((int)reader.GetInt64(0), (int)reader.GetInt64(1));
    }

    /// <summary>
    /// "PostgreSQL is down" for this database: no new connection is accepted (<c>ALLOW_CONNECTIONS false</c>, which
    /// the database's owner may set) and the open ones are terminated. <see cref="BringUpAsync"/> undoes it.
    /// </summary>
    public async Task TakeDownAsync()
    {
        await using (var admin = await OpenAdminAsync())
            await ExecuteAsync(admin, $"ALTER DATABASE {Name} ALLOW_CONNECTIONS false");
        await TerminateBackendsAsync();
    }

    public async Task BringUpAsync()
    {
        await using var admin = await OpenAdminAsync();
        await ExecuteAsync(admin, $"ALTER DATABASE {Name} ALLOW_CONNECTIONS true");
    }

    public async ValueTask DisposeAsync()
    {
        // The pool of the code under test keeps idle connections to this database; DROP ... WITH (FORCE) ends them anyway.
        using (var pooled = new NpgsqlConnection(ConnectionString)) NpgsqlConnection.ClearPool(pooled);
        await using var admin = await OpenAdminAsync();
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await ExecuteAsync(admin, $"DROP DATABASE IF EXISTS {Name} WITH (FORCE)");
                return;
            }
            // WITH (FORCE) refuses to end a process that no role owns, like an autovacuum worker busy with the
            // tables just written (42501 for a role that is not superuser); it is gone a moment later.
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.ObjectInUse && attempt < 100)
            {
                await Task.Delay(100);
            }
        }
    }
}
