using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds a P2PLocal.Rpc node to a host's services.</summary>
public static class P2PServiceCollectionExtensions
{
    /// <summary>
    /// Adds a node configured from <paramref name="configuration"/> (for example
    /// <c>builder.Configuration.GetSection("P2PLocal")</c>, with keys named as the <see cref="P2PNodeOptions"/>
    /// properties). The node starts with the host and stops with it; <see cref="Node"/> and
    /// <see cref="PeerDirectory"/> become injectable; its logger factory and clock come from the container.
    /// </summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configuration">The node's configuration section.</param>
    /// <returns>A builder to add the services and functions the node serves.</returns>
    /// <remarks>
    /// The options are checked when the host starts: a missing <c>Name</c> or a bad port stops the start with an
    /// <see cref="OptionsValidationException"/> that names the key. Calling AddP2PNode again configures the same node.
    /// </remarks>
    public static P2PNodeBuilder AddP2PNode(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<P2PNodeOptions>().Bind(configuration);
        return AddNode(services, (configuration as IConfigurationSection)?.Path);
    }

    /// <summary>
    /// Adds a node configured in code. The node starts with the host and stops with it; <see cref="Node"/> and
    /// <see cref="PeerDirectory"/> become injectable; its logger factory and clock come from the container.
    /// </summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configure">Sets the node's options; <see cref="P2PNodeOptions.Name"/> is required.</param>
    /// <returns>A builder to add the services and functions the node serves.</returns>
    /// <remarks>The options are checked when the host starts (<see cref="OptionsValidationException"/>).</remarks>
    public static P2PNodeBuilder AddP2PNode(this IServiceCollection services, Action<P2PNodeOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<P2PNodeOptions>().Configure(configure);
        return AddNode(services, sectionPath: null);
    }

    private static P2PNodeBuilder AddNode(IServiceCollection services, string? sectionPath)
    {
        if (!services.Any(d => d.ServiceType == typeof(HostedNode)))
        {
            services.AddOptions<P2PNodeOptions>().ValidateOnStart();
            services.AddSingleton<IValidateOptions<P2PNodeOptions>>(new P2PNodeOptionsValidator(sectionPath));
            services.AddSingleton<HostedNode>();
            services.TryAddSingleton(sp => sp.GetRequiredService<HostedNode>().Node);
            services.TryAddSingleton(sp => sp.GetRequiredService<Node>().Peers);
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, NodeHostedService>());
        }

        return new P2PNodeBuilder(services);
    }
}
