namespace P2PLocal.Rpc.HostedSample;

/// <summary>A dependency the service gets by constructor injection.</summary>
public sealed class ForecastSource(TimeProvider clock)
{
    private static readonly string[] s_skies = ["sunny", "cloudy", "rainy", "windy"];

    public string SkyFor(string city, int daysAhead) =>
        s_skies[(city.Length + daysAhead + clock.GetUtcNow().DayOfYear) % s_skies.Length];
}

/// <summary>The hosted service: built by DI, one instance for every call (the default lifetime).</summary>
[P2PService]
public partial class Forecaster(ForecastSource source)
{
    public string Forecast(string city, int daysAhead = 1) => $"{city} in {daysAhead} day(s): {source.SkyFor(city, daysAhead)}";
}
