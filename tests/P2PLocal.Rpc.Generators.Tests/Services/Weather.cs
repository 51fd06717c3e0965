using MessagePack;

namespace P2PLocal.Rpc.Generators.Tests.Services;

[MessagePackObject]
public sealed class Forecast
{
    [Key(0)]
    public string City { get; set; } = "";

    [Key(1)]
    public double[] Temperatures { get; set; } = [];
}

/// <summary>Contract first: the interface is the contract, implementations need no attribute.</summary>
[P2PService]
public interface IWeather
{
    Task<Forecast> ForecastAsync(string city, int days = 3, CancellationToken cancellationToken = default);

    string Station();
}

public sealed class Weather : IWeather
{
    public Task<Forecast> ForecastAsync(string city, int days = 3, CancellationToken cancellationToken = default) =>
        Task.FromResult(new Forecast { City = city, Temperatures = [.. Enumerable.Range(0, days).Select(d => 20.0 + d)] });

    public string Station() => "plain";
}

/// <summary>A [P2PService] class that implements a contract interface serves it, and gets no interface of its own.</summary>
[P2PService]
public partial class WeatherStation : IWeather
{
    public Task<Forecast> ForecastAsync(string city, int days = 3, CancellationToken cancellationToken = default) =>
        Task.FromResult(new Forecast { City = city.ToUpperInvariant(), Temperatures = [1.5] });

    string IWeather.Station() => "station";
}
