import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * Runs DynamoDB Local bound to 127.0.0.1 only. Its CLI has no host option and listens on every
 * interface, so this launcher builds the server from the normal CLI arguments, reaches the private
 * Jetty server by reflection and sets each connector's host before starting it.
 * Run as a single-file source program: java -cp <jar>:<lib>/* LoopbackDynamoDb.java -inMemory -port N.
 */
public class LoopbackDynamoDb {
  public static void main(String[] args) throws Exception {
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server jetty = (Server) field.get(proxy);
    for (Connector connector : jetty.getConnectors()) {
      if (connector instanceof ServerConnector sc) {
        sc.setHost("127.0.0.1");
      }
    }
    proxy.start();
    System.out.println("LoopbackDynamoDb listening on 127.0.0.1");
    proxy.join();
  }
}
