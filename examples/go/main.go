// A small Go client of honcho-grpc: a health check, CreateMessages, a refused call whose
// google.rpc details (ErrorInfo, BadRequest) are decoded, and a streamed chat printing its
// deltas as they arrive. The stubs are generated from proto/ by buf (see README.md).
//
//	go run . -addr 127.0.0.1:50051 -workspace demo
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	honchov1 "honcho-grpc/gen/go/honcho/v1"
)

func main() {
	addr := flag.String("addr", env("HONCHO_ADDRESS", "127.0.0.1:50051"), "server host:port")
	workspace := flag.String("workspace", env("HONCHO_WORKSPACE_ID", "default"), "workspace id")
	session := flag.String("session", "go-example", "session id")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if token := os.Getenv("HONCHO_API_KEY"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	// Plaintext for a local server; use grpc.WithTransportCredentials for TLS.
	conn, err := grpc.DialContext(ctx, *addr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		log.Fatalf("dial %s: %v", *addr, err)
	}
	defer conn.Close()

	checkHealth(ctx, conn)
	createMessages(ctx, conn, *workspace, *session)
	refusedCall(ctx, conn, *workspace)
	streamChat(ctx, conn, *workspace, *session)
}

func checkHealth(ctx context.Context, conn *grpc.ClientConn) {
	health, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		log.Fatalf("health: %v", err)
	}
	fmt.Printf("health: %s\n", health.GetStatus())
}

func createMessages(ctx context.Context, conn *grpc.ClientConn, workspace, session string) {
	created, err := honchov1.NewMessageServiceClient(conn).CreateMessages(ctx, &honchov1.CreateMessagesRequest{
		WorkspaceId: workspace,
		SessionId:   session,
		Messages: []*honchov1.MessageInput{
			{PeerId: "gopher", Content: "I write Go services and I just adopted a puppy named Biscuit"},
			{PeerId: "assistant", Content: "Congratulations on Biscuit!"},
		},
	})
	if err != nil {
		log.Fatalf("CreateMessages: %v", err)
	}
	for _, m := range created.GetMessages() {
		fmt.Printf("created: #%d %s: %s\n", m.GetSequence(), m.GetPeerId(), m.GetContent())
	}
}

// refusedCall sends an invalid peer id: the server answers INVALID_ARGUMENT with an ErrorInfo
// (a stable reason in domain honcho.dev) and a BadRequest naming the field.
func refusedCall(ctx context.Context, conn *grpc.ClientConn, workspace string) {
	_, err := honchov1.NewPeerServiceClient(conn).GetOrCreatePeer(ctx, &honchov1.GetOrCreatePeerRequest{
		WorkspaceId: workspace,
		PeerId:      "not a valid id!",
	})
	st, ok := status.FromError(err)
	if err == nil || !ok {
		log.Fatalf("GetOrCreatePeer with an invalid id: want a gRPC status, got %v", err)
	}
	fmt.Printf("refused: %s: %s\n", st.Code(), st.Message())
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			fmt.Printf("error info: reason=%s domain=%s metadata=%v\n", d.GetReason(), d.GetDomain(), d.GetMetadata())
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fmt.Printf("field violation: %s: %s\n", v.GetField(), v.GetDescription())
			}
		case error:
			log.Fatalf("undecodable status detail: %v", d)
		}
	}
}

func streamChat(ctx context.Context, conn *grpc.ClientConn, workspace, session string) {
	stream, err := honchov1.NewDialecticServiceClient(conn).StreamChat(ctx, &honchov1.StreamChatRequest{
		Query: &honchov1.ChatQuery{
			WorkspaceId: workspace,
			PeerId:      "gopher",
			SessionId:   session,
			Query:       "What is the name of gopher's puppy?",
		},
	})
	if err != nil {
		log.Fatalf("StreamChat: %v", err)
	}
	fmt.Print("chat: ")
	for {
		event, err := stream.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			log.Fatalf("StreamChat: %v", err)
		}
		switch e := event.GetEvent().(type) {
		case *honchov1.StreamChatResponse_Delta:
			fmt.Printf("[%s]", e.Delta.GetContent())
		case *honchov1.StreamChatResponse_Completion:
			fmt.Printf("\nchat done: finish_reason=%s output_tokens=%d\n",
				e.Completion.GetFinishReason(), e.Completion.GetUsage().GetOutputTokens())
		}
	}
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
